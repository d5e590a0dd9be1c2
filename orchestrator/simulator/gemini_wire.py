"""The simulator's side of Gemini ``generateContent``.

Served at ``POST /v1beta/models/{model}:generateContent`` (and ``/v1/...``, which
Google also serves). Validation follows Gemini's: non-empty ``contents`` of
``user``/``model`` turns made of ``parts``. Errors use Google's shape
``{"error": {code, message, status}}``, with a ``RetryInfo`` detail on 429.
Implicit caching follows the OpenAI-style rule: a prompt of 1,024+ tokens whose
prefix (system instruction and all but the last turn) was seen before reports it
as ``cachedContentTokenCount``. Thinking models report ``thoughtsTokenCount``.

``:streamGenerateContent?alt=sse`` streams the answer as server-sent events,
each a ``GenerateContentResponse`` carrying a few words (a function call comes
whole, in one event); the last carries ``finishReason`` and the full
``usageMetadata``. Events end with CRLF pairs, as Google's do.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from orchestrator.core.tokens import MESSAGE_OVERHEAD_TOKENS, estimate_tokens, image_tokens
from orchestrator.simulator.limiter import Decision
from orchestrator.simulator.streaming import Frames, sse, text_pieces
from orchestrator.simulator.wire import Answer, SimCall, SimError, ToolSpec, seed_of

NAME = "gemini"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_STATUS = {
    "invalid_request": "INVALID_ARGUMENT",
    "authentication": "UNAUTHENTICATED",
    "permission": "PERMISSION_DENIED",
    "not_found": "NOT_FOUND",
    "rate_limit": "RESOURCE_EXHAUSTED",
    "server": "INTERNAL",
    "overloaded": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED",
    "context_length": "INVALID_ARGUMENT",
    "content_filter": "INVALID_ARGUMENT",
    "insufficient_quota": "RESOURCE_EXHAUSTED",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool": "STOP"}


def _part_tokens(part: object, where: str) -> int:
    if not isinstance(part, dict) or not part:
        raise SimError(400, f"Invalid value at '{where}': a part needs data", param=where)
    if isinstance(part.get("text"), str):
        return estimate_tokens(part["text"])
    if "inlineData" in part or "fileData" in part:
        return image_tokens("high")
    return estimate_tokens(str(part.get("functionCall") or part.get("functionResponse") or ""))


def _turn_tokens(turn: object, where: str) -> int:
    if not isinstance(turn, dict) or turn.get("role", "user") not in ("user", "model"):
        raise SimError(400, f"Please use a valid role: user, model. ({where})", param=where)
    parts = turn.get("parts")
    if not isinstance(parts, list) or not parts:
        raise SimError(400, f"* {where}.parts: contents.parts must not be empty", param=where)
    return MESSAGE_OVERHEAD_TOKENS + sum(
        _part_tokens(p, f"{where}.parts[{i}]") for i, p in enumerate(parts)
    )


def _tool(body: dict[str, Any], contents: list[Any]) -> ToolSpec | None:
    declarations = [
        d
        for tool in body.get("tools") or ()
        if isinstance(tool, dict)
        for d in tool.get("functionDeclarations") or ()
        if isinstance(d, dict) and isinstance(d.get("name"), str)
    ]
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    last_parts = contents[-1].get("parts") or []
    answering = any(isinstance(p, dict) and "functionResponse" in p for p in last_parts)
    if not declarations or config.get("mode") == "NONE" or answering:
        return None
    allowed = config.get("allowedFunctionNames") or []
    chosen = next((d for d in declarations if d["name"] in allowed), declarations[0])
    return ToolSpec(chosen["name"], chosen.get("parameters") or {})


def parse(body: object, path_model: str | None = None) -> SimCall:
    """Validate a ``generateContent`` body the way Gemini would, or raise ``SimError``."""
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON payload received.")
    model = (path_model or "").removeprefix("models/")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise SimError(400, "* GenerateContentRequest.contents: contents is not specified")
    counts = [_turn_tokens(t, f"contents[{i}]") for i, t in enumerate(contents)]
    system = body.get("systemInstruction")
    system_tokens = 0
    if isinstance(system, dict):
        system_tokens = sum(_part_tokens(p, "systemInstruction") for p in system.get("parts") or ())
    config = body.get("generationConfig") or {}
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise SimError(400, "maxOutputTokens must be a positive integer")
    prefix_tokens = system_tokens + sum(counts[:-1])
    return SimCall(
        model=model,
        seed=seed_of(model, system, contents),
        prompt_tokens=system_tokens + sum(counts),
        max_tokens=max_tokens,
        tool=_tool(body, contents),
        json_mode=config.get("responseMimeType") == "application/json",
        prefix_key=seed_of(NAME, model, system, contents[:-1]) if prefix_tokens else None,
        prefix_tokens=prefix_tokens,
    )


def render(call: SimCall, answer: Answer) -> dict[str, Any]:
    """A ``GenerateContentResponse`` for ``answer``."""
    parts: list[dict[str, Any]] = []
    if answer.text:
        parts.append({"text": answer.text})
    if answer.tool_name is not None:
        parts.append({"functionCall": {"name": answer.tool_name, "args": answer.tool_arguments}})
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": _FINISH[answer.finish],
                "index": 0,
            }
        ],
        "usageMetadata": _usage(call, answer),
        "modelVersion": call.model,
        "responseId": uuid.uuid4().hex[:22],
    }


def _usage(call: SimCall, answer: Answer) -> dict[str, Any]:
    visible = answer.output_tokens - answer.reasoning_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": call.prompt_tokens,
        "candidatesTokenCount": visible,
        "totalTokenCount": call.prompt_tokens + answer.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": call.prompt_tokens}],
    }
    if answer.cached_tokens:
        usage["cachedContentTokenCount"] = answer.cached_tokens
    if answer.reasoning_tokens:
        usage["thoughtsTokenCount"] = answer.reasoning_tokens
    return usage


STREAM_WORDS = 6  # Gemini streams bigger pieces than one token


def stream_frames(call: SimCall, answer: Answer, body: dict[str, Any]) -> Frames:
    """``answer`` as ``streamGenerateContent?alt=sse`` events."""
    response_id = uuid.uuid4().hex[:22]
    running: dict[str, Any] = {
        "promptTokenCount": call.prompt_tokens,
        "totalTokenCount": call.prompt_tokens,
    }

    def event(parts: list[dict[str, Any]], last: bool = False) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = _FINISH[answer.finish]
        response = {
            "candidates": [candidate],
            "usageMetadata": _usage(call, answer) if last else running,
            "modelVersion": call.model,
            "responseId": response_id,
        }
        return sse(response, crlf=True)

    frames = Frames()
    pieces: list[list[dict[str, Any]]] = [
        [{"text": p}] for p in text_pieces(answer.text, STREAM_WORDS)
    ]
    if answer.tool_name is not None:
        pieces.append([{"functionCall": {"name": answer.tool_name, "args": answer.tool_arguments}}])
    frames.body = [event(parts) for parts in pieces[:-1]]
    frames.tail = [event(pieces[-1] if pieces else [{"text": ""}], last=True)]
    return frames


def error_body(error: SimError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": error.status,
        "message": error.message,
        "status": _STATUS.get(error.kind, "INTERNAL"),
    }
    retry = error.headers.get("retry-after")
    if error.status == 429 and retry:
        body["details"] = [{"@type": RETRY_INFO, "retryDelay": f"{retry}s"}]
    return {"error": body}


def context_error(window: int, prompt_tokens: int, max_tokens: int) -> SimError:
    message = (
        f"The input token count ({prompt_tokens}) exceeds the maximum number of tokens "
        f"allowed ({window - max_tokens if prompt_tokens <= window else window})."
    )
    return SimError(400, message, "context_length", stat="context_length")


def limit_headers(decision: Decision) -> dict[str, str]:
    """Gemini sends no rate-limit headers on success."""
    return {}


def rate_limit_error(decision: Decision) -> SimError:
    message = "Resource has been exhausted (e.g. check quota)."
    retry_after = str(max(1, math.ceil(decision.retry_after_s)))
    return SimError(429, message, "rate_limit", headers={"retry-after": retry_after}, stat="429")
