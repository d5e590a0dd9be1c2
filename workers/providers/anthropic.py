"""Adapter for Anthropic's Messages API (``POST {base_url}/messages``).

Differences from the canonical (OpenAI-shaped) request that this module bridges:

- the system prompt is a top-level ``system`` field, not a message;
- content is a list of blocks: ``text`` (with ``cache_control``), ``image`` with a
  ``base64`` or ``url`` source, ``tool_use`` in assistant turns and ``tool_result``
  in user turns (a canonical ``tool`` message becomes one);
- consecutive turns of one role are merged, since the API wants them alternating;
- ``max_tokens`` is required, ``temperature`` is capped at 1, ``stop`` is
  ``stop_sequences``, tools carry ``input_schema``;
- there is no JSON mode: a JSON response format becomes an instruction appended
  to the system prompt (with the schema, if one was given);
- usage counts cache writes and cache reads apart from ``input_tokens``; the
  canonical ``input_tokens`` is their sum.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import (
    Completion,
    FinishReason,
    FunctionCall,
    ImagePart,
    JobRequest,
    Message,
    TextPart,
    ToolCall,
    Usage,
)
from workers.providers.openai import SIMULATOR_API_KEY
from workers.providers.prompt_cache import mark_stable_prefix
from workers.providers.sse import DeltaSink, post_stream
from workers.providers.stream_parsers import AnthropicStreamParser
from workers.providers.transport import Malformed, build_completion, int_field, post_json

ANTHROPIC_VERSION = "2023-06-01"
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _part_block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        block: dict[str, Any] = {"type": "text", "text": part.text}
        if part.cache_control is not None:
            block["cache_control"] = part.cache_control.model_dump(exclude_none=True)
        return block
    inline = part.image_url.inline()
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": part.image_url.url}}
    media_type, data = inline
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        return [{**result, "content": message.text()}]
    blocks = [_part_block(p) for p in message.parts()]
    for call in message.tool_calls or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": call.function.parsed_arguments(),
            }
        )
    return blocks


def wire_messages(turns: list[Message]) -> list[dict[str, Any]]:
    """Canonical turns (no system) as alternating Anthropic messages of content blocks."""
    out: list[dict[str, Any]] = []
    for message in turns:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _json_instruction(request: JobRequest) -> str | None:
    fmt = request.response_format
    if fmt is None or not fmt.is_json:
        return None
    text = "Respond with a single JSON object and nothing else."
    if fmt.json_schema is not None:
        text += " It must follow this JSON schema: " + json.dumps(fmt.json_schema.schema_)
    return text


def _system(request: JobRequest) -> str | list[dict[str, Any]] | None:
    """The top-level system field: plain text, or blocks when a part carries cache_control."""
    systems = [m for m in request.canonical_messages() if m.role == "system"]
    instruction = _json_instruction(request)
    if any(isinstance(p, TextPart) and p.cache_control for m in systems for p in m.parts()):
        blocks = [_part_block(p) for m in systems for p in m.parts() if isinstance(p, TextPart)]
        if instruction:
            blocks.append({"type": "text", "text": instruction})
        return blocks
    texts = [t for t in (request.system_prompt(), instruction) if t]
    return "\n\n".join(texts) or None


def _tool_choice(request: JobRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
    return {"type": "tool", "name": choice.function.name}


def build_body(deployment: Deployment, request: JobRequest) -> dict[str, Any]:
    """The Messages API body for ``request`` sent to ``deployment``."""
    body: dict[str, Any] = {
        "model": deployment.model,
        "max_tokens": min(request.max_tokens, deployment.max_output_tokens),
        "messages": wire_messages(request.turns()),
    }
    optional: dict[str, Any] = {
        "system": _system(request),
        "temperature": None if request.temperature is None else min(request.temperature, 1.0),
        "top_p": request.top_p,
        "stop_sequences": request.stop or None,
        "tool_choice": _tool_choice(request),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.tools:
        body["tools"] = [
            {
                "name": t.function.name,
                **({"description": t.function.description} if t.function.description else {}),
                "input_schema": t.function.parameters,
            }
            for t in request.tools
        ]
    return mark_stable_prefix(body)  # prompt caching for long stable prefixes (CONTEXT.md)


def parse_usage(usage: object) -> Usage:
    """Canonical usage: input = uncached + cache-creation + cache-read tokens."""
    written = int_field(usage, "cache_creation_input_tokens") or 0
    read = int_field(usage, "cache_read_input_tokens") or 0
    return Usage(
        input_tokens=(int_field(usage, "input_tokens") or 0) + written + read,
        output_tokens=int_field(usage, "output_tokens") or 0,
        cached_input_tokens=read,
        cache_write_input_tokens=written,
    )


def parse_completion(data: Any, request: JobRequest) -> Completion:
    """A ``Completion`` from a decoded Messages answer, or ``Malformed``."""
    if not isinstance(data, dict) or data.get("type", "message") != "message":
        raise Malformed("not a message")
    content = data.get("content")
    if not isinstance(content, list):
        raise Malformed("no content")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, separators=(",", ":"))
            function = FunctionCall(name=block["name"], arguments=arguments)
            calls.append(ToolCall(id=block["id"], function=function))
    text = "".join(texts)
    finish = _FINISH.get(str(data.get("stop_reason")), "stop")
    return build_completion(
        request,
        text=text,
        finish_reason=finish,
        usage=parse_usage(data.get("usage")),
        tool_calls=calls,
        model=data.get("model"),
    )


class AnthropicMessagesAdapter:
    """Calls one Anthropic Messages deployment per ``complete`` over an injected client."""

    def __init__(self, client: httpx.Client, api_key: str | None) -> None:
        self._client = client
        self._api_key = api_key

    def _headers(self) -> dict[str, str]:
        return {
            "x-api-key": self._api_key or SIMULATOR_API_KEY,
            "anthropic-version": ANTHROPIC_VERSION,
        }

    def complete(self, deployment: Deployment, request: JobRequest) -> Completion:
        """One message; raises a ``ProviderError`` subclass on any failure."""
        return post_json(
            self._client,
            f"{deployment.base_url.rstrip('/')}/messages",
            body=build_body(deployment, request),
            headers=self._headers(),
            deployment=deployment,
            request=request,
            api_key=self._api_key,
            parse=parse_completion,
        )

    def stream(
        self, deployment: Deployment, request: JobRequest, on_delta: DeltaSink
    ) -> Completion:
        """The same message streamed (``stream: true``), text relayed as it comes."""
        return post_stream(
            self._client,
            f"{deployment.base_url.rstrip('/')}/messages",
            body={**build_body(deployment, request), "stream": True},
            headers=self._headers(),
            deployment=deployment,
            request=request,
            api_key=self._api_key,
            parser=AnthropicStreamParser(),
            parse=parse_completion,
            on_delta=on_delta,
        )
