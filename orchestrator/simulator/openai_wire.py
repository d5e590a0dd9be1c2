"""The simulator's side of OpenAI chat completions (``POST /v1/chat/completions``).

Validation follows OpenAI's: a model, a non-empty ``messages`` array whose items
have a role, parts with a type, ``n`` of 1, ``stream_options`` only with
``stream``. With ``stream: true`` the answer is ``chat.completion.chunk`` events
(role first, then content or tool-call argument pieces, then the finish, then
the usage chunk with empty ``choices`` when ``stream_options.include_usage``,
then ``data: [DONE]``). Errors use OpenAI's
shape ``{"error": {message, type, param, code}}``. Prompt caching follows
OpenAI's automatic rule: a prompt of 1,024+ tokens whose prefix (all but the
last message) was seen before reports that prefix, in steps of 128 tokens,
as ``cached_tokens``.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

from orchestrator.core.tokens import MESSAGE_OVERHEAD_TOKENS, estimate_tokens, image_tokens
from orchestrator.simulator.limiter import Decision
from orchestrator.simulator.streaming import Frames, json_pieces, sse, text_pieces
from orchestrator.simulator.wire import (
    Answer,
    SimCall,
    SimError,
    ToolSpec,
    positive_int,
    seed_of,
)

NAME = "openai"
_TYPES = {
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "rate_limit": "requests",
    "server": "server_error",
    "overloaded": "server_error",
    "timeout": "timeout",
    "insufficient_quota": "insufficient_quota",
}
_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}


def _content_tokens(content: object, where: str) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return estimate_tokens(content)
    if not isinstance(content, list):
        raise SimError(400, f"{where} must be a string or an array of parts", param=where)
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            total += estimate_tokens(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise SimError(400, f"{where}: image_url needs a url", param=where)
            total += image_tokens(image.get("detail") if isinstance(image, dict) else None)
        elif not isinstance(kind, str):
            raise SimError(400, f"{where}: every part needs a type", param=where)
    return total


def _message_tokens(messages: list[Any]) -> list[int]:
    counts = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise SimError(400, f"{where} must be an object with a role", param=where)
        tokens = MESSAGE_OVERHEAD_TOKENS + _content_tokens(
            message.get("content"), f"{where}.content"
        )
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                tokens += estimate_tokens(str(function.get("arguments", "")))
        counts.append(tokens)
    return counts


def _tool(body: dict[str, Any], messages: list[Any]) -> ToolSpec | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    if isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        return None  # the model answers the tool's result in text
    functions: list[dict[str, Any]] = [
        t["function"]
        for t in tools
        if isinstance(t, dict)
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
    ]
    if not functions:
        raise SimError(400, "tools[0].function needs a name", param="tools")
    wanted = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    chosen = next((f for f in functions if f["name"] == wanted), functions[0])
    return ToolSpec(chosen["name"], chosen.get("parameters") or {})


def parse(body: object, path_model: str | None = None) -> SimCall:
    """Validate a chat-completions body the way OpenAI would, or raise ``SimError``."""
    if not isinstance(body, dict):
        raise SimError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise SimError(400, "You must provide a model parameter.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimError(400, "'messages' must be a non-empty array.", param="messages")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise SimError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if body.get("n") not in (None, 1):
        raise SimError(400, "n must be 1 in the simulator.", param="n", code="unsupported_value")
    counts = _message_tokens(messages)
    fmt = body.get("response_format")
    json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
    users = (m for m in messages if isinstance(m, dict) and m.get("role") == "user")
    first_user = next(users, None)
    return SimCall(
        model=model,
        seed=seed_of(model, messages),
        prompt_tokens=sum(counts),
        max_tokens=positive_int(body, "max_completion_tokens", "max_tokens"),
        tool=_tool(body, messages),
        json_mode=json_mode,
        topic=seed_of(model, first_user),
        json_schema=_schema_of(fmt),
        prefix_key=seed_of(NAME, model, messages[:-1]) if len(messages) > 1 else None,
        prefix_tokens=sum(counts[:-1]) // 128 * 128,
    )


def _schema_of(fmt: object) -> dict[str, Any] | None:
    """The schema of a ``json_schema`` response format, if it has one."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def render(call: SimCall, answer: Answer) -> dict[str, Any]:
    """A chat.completion object for ``answer``."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.tool_name is not None:
        arguments = json.dumps(answer.tool_arguments)
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": answer.tool_name, "arguments": arguments},
            }
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": "fp_switchyard_sim",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH[answer.finish],
            }
        ],
        "usage": _usage(call, answer),
    }


def _usage(call: SimCall, answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": call.prompt_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": answer.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def stream_frames(call: SimCall, answer: Answer, body: dict[str, Any]) -> Frames:
    """``answer`` as ``chat.completion.chunk`` events, the way OpenAI streams it."""
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    base: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": "fp_switchyard_sim",
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    frames = Frames()
    if answer.tool_name is None:
        frames.head.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        frames.body = [chunk({"content": piece}) for piece in text_pieces(answer.text)]
    else:
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        function = {"name": answer.tool_name, "arguments": ""}
        opening = {"index": 0, "id": call_id, "type": "function", "function": function}
        frames.head.append(chunk({"role": "assistant", "content": None, "tool_calls": [opening]}))
        frames.body = [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in json_pieces(json.dumps(answer.tool_arguments))
        ]
    frames.tail.append(chunk({}, _FINISH[answer.finish]))
    if include_usage:
        frames.tail.append(sse({**base, "choices": [], "usage": _usage(call, answer)}))
    frames.tail.append(sse("[DONE]"))
    return frames


def error_body(error: SimError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": _TYPES.get(error.kind, "invalid_request_error"),
            "param": error.param,
            "code": error.code,
        }
    }


def context_error(window: int, prompt_tokens: int, max_tokens: int) -> SimError:
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} "
        "in the completion). Please reduce the length of the messages or completion."
    )
    return SimError(
        400,
        message,
        "context_length",
        param="messages",
        code="context_length_exceeded",
        stat="context_length",
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.3g}s" if minutes else f"{rest:.3g}s"


def limit_headers(decision: Decision) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the limits that apply."""
    headers: dict[str, str] = {}
    for name, quota in (("requests", decision.requests), ("tokens", decision.tokens)):
        if quota is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(quota.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(quota.remaining)
            headers[f"x-ratelimit-reset-{name}"] = _duration(quota.reset_s)
    return headers


def rate_limit_error(decision: Decision) -> SimError:
    wait = decision.retry_after_s
    which = decision.exceeded or "requests"
    message = f"Rate limit reached for {which} (simulated). Please try again in {_duration(wait)}."
    headers = {**limit_headers(decision), "retry-after": str(max(1, math.ceil(wait)))}
    headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
    error = SimError(429, message, "rate_limit", code="rate_limit_exceeded", headers=headers)
    error.stat = "429"
    return error
