"""The simulator's side of Anthropic's Messages API (``POST /v1/messages``).

Validation follows Anthropic's: ``model``, ``max_tokens`` and a non-empty
``messages`` array of user/assistant turns whose content is a string or a list
of typed blocks; ``system`` is a string or a list of text blocks. Errors use
Anthropic's shape ``{"type": "error", "error": {type, message}}``. With
``stream: true`` the answer is Anthropic's event stream: ``message_start``, per
content block ``content_block_start``, ``content_block_delta`` (``text_delta``
or ``input_json_delta``) and ``content_block_stop``, a ``ping``, then
``message_delta`` (stop reason and output tokens) and ``message_stop``.

Prompt caching follows Anthropic's rule: the prompt up to the last block that
carries ``cache_control`` (tools, then system, then messages) is the prefix; the
first time a prefix of 1,024+ tokens is seen it is reported as
``cache_creation_input_tokens``, later as ``cache_read_input_tokens``, and
``input_tokens`` counts only the rest.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.core.tokens import MESSAGE_OVERHEAD_TOKENS, estimate_tokens, image_tokens
from orchestrator.simulator.limiter import Decision
from orchestrator.simulator.streaming import Frames, json_pieces, sse, text_pieces
from orchestrator.simulator.wire import Answer, SimCall, SimError, ToolSpec, positive_int, seed_of

NAME = "anthropic"
_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "server": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
    "context_length": "invalid_request_error",
    "content_filter": "invalid_request_error",
    "insufficient_quota": "billing_error",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}


def _block_tokens(block: object, where: str) -> tuple[int, bool]:
    """(tokens, carries cache_control) for one content block."""
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise SimError(400, f"{where}: every block needs a type", param=where)
    kind = block["type"]
    tokens = 0
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise SimError(400, f"{where}.text: Field required", param=where)
        tokens = estimate_tokens(block["text"])
    elif kind == "image":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") not in ("base64", "url", "file"):
            raise SimError(400, f"{where}.source: invalid image source", param=where)
        tokens = image_tokens("high")
    elif kind in ("tool_use", "tool_result"):
        tokens = estimate_tokens(str(block.get("input") or block.get("content") or ""))
    return tokens, "cache_control" in block


Segment = tuple[int, bool, object]  # (tokens, carries cache_control, the raw piece)


def _content_tokens(content: object, where: str) -> list[Segment]:
    if isinstance(content, str):
        return [(estimate_tokens(content), False, content)]
    if not isinstance(content, list) or not content:
        raise SimError(400, f"{where}: must be a string or a non-empty list of blocks")
    return [(*_block_tokens(b, f"{where}.{i}"), b) for i, b in enumerate(content)]


def _segments(body: dict[str, Any], messages: list[Any]) -> list[Segment]:
    """The prompt in cache order (tools, system, then message blocks), piece by piece."""
    segments: list[Segment] = []
    for tool in body.get("tools") or ():
        marked = isinstance(tool, dict) and "cache_control" in tool
        segments.append((estimate_tokens(str(tool)), marked, tool))
    if body.get("system") is not None:
        segments += _content_tokens(body["system"], "system")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise SimError(400, f"{where}.role: Input should be 'user' or 'assistant'")
        segments.append((MESSAGE_OVERHEAD_TOKENS, False, message["role"]))
        segments += _content_tokens(message.get("content"), f"{where}.content")
    return segments


def _answers_tool(messages: list[Any]) -> bool:
    content = messages[-1].get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _tool(body: dict[str, Any], messages: list[Any]) -> ToolSpec | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and "name" in t]
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") == "none" or _answers_tool(messages):
        return None
    wanted = choice.get("name") if choice.get("type") == "tool" else None
    chosen = next((t for t in tools if t["name"] == wanted), tools[0])
    return ToolSpec(chosen["name"], chosen.get("input_schema") or {})


def parse(body: object, path_model: str | None = None) -> SimCall:
    """Validate a Messages body the way Anthropic would, or raise ``SimError``."""
    if not isinstance(body, dict):
        raise SimError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise SimError(400, "model: Field required", param="model")
    max_tokens = positive_int(body, "max_tokens")
    if max_tokens is None:
        raise SimError(400, "max_tokens: Field required", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimError(400, "messages: at least one message is required", param="messages")
    segments = _segments(body, messages)
    marks = [i for i, (_, marked, _) in enumerate(segments) if marked]
    cut = marks[-1] + 1 if marks else 0
    prefix = [raw for _, _, raw in segments[:cut]]
    return SimCall(
        model=model,
        seed=seed_of(model, body.get("system"), messages),
        prompt_tokens=sum(t for t, _, _ in segments),
        max_tokens=max_tokens,
        tool=_tool(body, messages),
        prefix_key=seed_of(NAME, model, prefix) if cut else None,
        prefix_tokens=sum(t for t, _, _ in segments[:cut]),
    )


def render(call: SimCall, answer: Answer) -> dict[str, Any]:
    """A Messages ``message`` object for ``answer``."""
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    if answer.tool_name is not None:
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": answer.tool_name,
                "input": answer.tool_arguments,
            }
        )
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": _STOP[answer.finish],
        "stop_sequence": None,
        "usage": _usage(call, answer, answer.output_tokens),
    }


def _usage(call: SimCall, answer: Answer, output_tokens: int) -> dict[str, Any]:
    uncached = call.prompt_tokens - answer.cached_tokens - answer.cache_write_tokens
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": answer.cache_write_tokens,
        "cache_read_input_tokens": answer.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _block_frames(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    """One content block's events: its start, its deltas, its stop."""
    opening = {"type": "content_block_start", "index": index, "content_block": start}
    frames = [sse(opening, "content_block_start")]
    for delta in deltas:
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        frames.append(sse(event, "content_block_delta"))
    frames.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return frames


def stream_frames(call: SimCall, answer: Answer, body: dict[str, Any]) -> Frames:
    """``answer`` as Anthropic's Messages event stream."""
    message = render(call, answer)
    message.update(content=[], stop_reason=None, usage=_usage(call, answer, 1))
    frames = Frames(head=[sse({"type": "message_start", "message": message}, "message_start")])
    blocks: list[bytes] = []
    if answer.text or answer.tool_name is None:
        deltas = [{"type": "text_delta", "text": p} for p in text_pieces(answer.text)]
        blocks += _block_frames(0, {"type": "text", "text": ""}, deltas)
    if answer.tool_name is not None:
        start = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": answer.tool_name,
            "input": {},
        }
        arguments = json.dumps(answer.tool_arguments)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in json_pieces(arguments)]
        blocks += _block_frames(1 if answer.text else 0, start, deltas)
    frames.head.append(blocks[0])
    frames.head.append(sse({"type": "ping"}, "ping"))
    frames.body = blocks[1:-1]
    delta = {"stop_reason": _STOP[answer.finish], "stop_sequence": None}
    usage = {"output_tokens": answer.output_tokens}
    frames.tail = [
        blocks[-1],
        sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return frames


def error_body(error: SimError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _TYPES.get(error.kind, "api_error"), "message": error.message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def context_error(window: int, prompt_tokens: int, max_tokens: int) -> SimError:
    if prompt_tokens > window:
        message = f"prompt is too long: {prompt_tokens} tokens > {window} maximum"
    else:
        message = (
            f"input length and `max_tokens` exceed context limit: {prompt_tokens} + "
            f"{max_tokens} > {window}, decrease input length or `max_tokens` and try again"
        )
    return SimError(400, message, "context_length", stat="context_length")


def _at(seconds: float) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def limit_headers(decision: Decision) -> dict[str, str]:
    """Anthropic's ``anthropic-ratelimit-*`` headers for the limits that apply."""
    headers: dict[str, str] = {}
    for name, quota in (("requests", decision.requests), ("tokens", decision.tokens)):
        if quota is not None:
            headers[f"anthropic-ratelimit-{name}-limit"] = str(quota.limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(quota.remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = _at(quota.reset_s)
    return headers


def rate_limit_error(decision: Decision) -> SimError:
    which = decision.exceeded or "requests"
    message = (
        "This request would exceed the rate limit for your organization "
        f"of {which} per minute (simulated)."
    )
    retry_after = str(max(1, math.ceil(decision.retry_after_s)))
    headers = {**limit_headers(decision), "retry-after": retry_after}
    return SimError(429, message, "rate_limit", headers=headers, stat="429")
