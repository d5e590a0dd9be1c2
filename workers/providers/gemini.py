"""Adapter for Google's Gemini API (``POST {base_url}/models/{model}:generateContent``).

Differences from the canonical (OpenAI-shaped) request that this module bridges:

- the system prompt is ``systemInstruction``; turns are ``contents`` with roles
  ``user`` and ``model``, each a list of ``parts``;
- a ``data:`` image is an ``inlineData`` part; an image URL is a ``fileData``
  part (Gemini fetches ``gs://``, File API and public HTTP URLs);
- an assistant tool call is a ``functionCall`` part and a ``tool`` message a
  ``functionResponse`` part, which needs the function's name (looked up from
  the call it answers);
- generation parameters live in ``generationConfig``; a JSON response format is
  ``responseMimeType: application/json`` (plus ``responseJsonSchema``);
- the key travels in the ``x-goog-api-key`` header, never in the URL, so it
  cannot leak through a logged URL;
- a prompt blocked by safety filters answers 200 with ``promptFeedback.blockReason``
  and no candidates: that is a ``ContentPolicy`` error;
- ``usageMetadata.promptTokenCount`` includes cached tokens; thinking tokens
  (``thoughtsTokenCount``) are billed as output but reported apart.
"""

from __future__ import annotations

import json
import mimetypes
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
from workers.providers.sse import DeltaSink, post_stream
from workers.providers.stream_parsers import GeminiStreamParser
from workers.providers.transport import Blocked, Malformed, build_completion, int_field, post_json

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    inline = part.image_url.inline()
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    url = part.image_url.url
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(message: Message, names: dict[str, str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        name = message.name or names.get(message.tool_call_id or "", "tool")
        response = {"name": name, "response": {"content": message.text()}}
        return [{"functionResponse": response}]
    parts = [_part(p) for p in message.parts()]
    for call in message.tool_calls or ():
        names[call.id] = call.function.name
        parts.append(
            {"functionCall": {"name": call.function.name, "args": call.function.parsed_arguments()}}
        )
    return parts


def wire_contents(turns: list[Message]) -> list[dict[str, Any]]:
    """Canonical turns (no system) as Gemini ``contents``, consecutive roles merged."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in turns:
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message, names)
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


def _generation_config(deployment: Deployment, request: JobRequest) -> dict[str, Any]:
    config: dict[str, Any] = {
        "maxOutputTokens": min(request.max_tokens, deployment.max_output_tokens)
    }
    optional = {
        "temperature": request.temperature,
        "topP": request.top_p,
        "stopSequences": request.stop or None,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    fmt = request.response_format
    if fmt is not None and fmt.is_json:
        config["responseMimeType"] = "application/json"
        if fmt.json_schema is not None:
            config["responseJsonSchema"] = fmt.json_schema.schema_
    return config


def _tool_config(request: JobRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    names = [choice.function.name]
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}


def build_body(deployment: Deployment, request: JobRequest) -> dict[str, Any]:
    """The ``generateContent`` body for ``request`` sent to ``deployment``."""
    body: dict[str, Any] = {
        "contents": wire_contents(request.turns()),
        "generationConfig": _generation_config(deployment, request),
    }
    system = request.system_prompt()
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if request.tools:
        declarations = [
            t.function.model_dump(exclude_none=True, exclude={"strict"}) for t in request.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    return body


def parse_usage(meta: object) -> Usage:
    """Canonical usage from ``usageMetadata`` (output includes thinking tokens)."""
    thoughts = int_field(meta, "thoughtsTokenCount") or 0
    return Usage(
        input_tokens=int_field(meta, "promptTokenCount") or 0,
        output_tokens=(int_field(meta, "candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=int_field(meta, "cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def _read_parts(parts: list[Any]) -> tuple[str, list[ToolCall]]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("thought"):
            continue  # thought summaries are not the answer
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            arguments = json.dumps(call.get("args") or {}, separators=(",", ":"))
            function = FunctionCall(name=call["name"], arguments=arguments)
            calls.append(ToolCall(id=str(call.get("id") or f"call_{i}"), function=function))
    return "".join(texts), calls


def parse_completion(data: Any, request: JobRequest) -> Completion:
    """A ``Completion`` from a decoded ``generateContent`` answer, or ``Malformed``."""
    if not isinstance(data, dict):
        raise Malformed("not an object")
    candidates = data.get("candidates")
    if not candidates:
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise Blocked(f"prompt blocked: {blocked}")
        raise Malformed("no candidates")
    candidate = candidates[0]
    parts = (candidate.get("content") or {}).get("parts") or []
    if not isinstance(parts, list):
        raise Malformed("parts is not a list")
    text, calls = _read_parts(parts)
    finish = _FINISH.get(str(candidate.get("finishReason")), "stop")
    if calls and finish == "stop":
        finish = "tool_calls"
    return build_completion(
        request,
        text=text,
        finish_reason=finish,
        usage=parse_usage(data.get("usageMetadata")),
        tool_calls=calls,
        model=data.get("modelVersion"),
    )


class GeminiAdapter:
    """Calls one Gemini ``generateContent`` deployment per ``complete`` over an injected client."""

    def __init__(self, client: httpx.Client, api_key: str | None) -> None:
        self._client = client
        self._api_key = api_key

    def _url(self, deployment: Deployment, action: str) -> str:
        return f"{deployment.base_url.rstrip('/')}/models/{deployment.model}:{action}"

    def complete(self, deployment: Deployment, request: JobRequest) -> Completion:
        """One generation; raises a ``ProviderError`` subclass on any failure."""
        return post_json(
            self._client,
            self._url(deployment, "generateContent"),
            body=build_body(deployment, request),
            headers={"x-goog-api-key": self._api_key or SIMULATOR_API_KEY},
            deployment=deployment,
            request=request,
            api_key=self._api_key,
            parse=parse_completion,
        )

    def stream(
        self, deployment: Deployment, request: JobRequest, on_delta: DeltaSink
    ) -> Completion:
        """The same generation from ``:streamGenerateContent?alt=sse``, text relayed as it comes."""
        return post_stream(
            self._client,
            self._url(deployment, "streamGenerateContent") + "?alt=sse",
            body=build_body(deployment, request),
            headers={"x-goog-api-key": self._api_key or SIMULATOR_API_KEY},
            deployment=deployment,
            request=request,
            api_key=self._api_key,
            parser=GeminiStreamParser(),
            parse=parse_completion,
            on_delta=on_delta,
        )
