"""The simulator's view of the OpenAI chat-completions wire format.

Requests are read as plain JSON, not through pydantic models: the simulator
must accept whatever real clients send (unknown roles, extra fields, parts it
does not understand) and must stay cheap per request, because throughput
benchmarks measure against it. Everything it refuses becomes a ``WireError``,
rendered in OpenAI's error shape ``{"error": {message, type, param, code}}``.

Answers are deterministic: the text is drawn from a fixed vocabulary by a
``random.Random`` seeded with a hash of (model, messages), and its length
(20..400 tokens, one token per word) follows from the same hash.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

from orchestrator.tokens import MESSAGE_OVERHEAD_TOKENS, estimate_tokens, image_tokens

MIN_COMPLETION_TOKENS = 20
MAX_COMPLETION_TOKENS = 400
SENTENCE_WORDS = 12

_WORDS = """the a of to and in is that for it as with on by this be are from at or an
    which model request queue worker token tier route batch cost budget latency
    signal system answer result value data cluster provider deployment retry limit
    window context prompt image vision reasoning code fast plan order state lease
    ledger metric rate pace flow carries returns measures keeps sends reads writes
    holds moves counts checks waits runs starts ends finds shows gives takes makes
    small large quick steady careful simple clear exact early late every each
    some most first last next other same new old good best high low"""
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())


class WireError(Exception):
    """A request the simulator refuses; becomes an OpenAI-shaped error response."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True, slots=True)
class ChatCall:
    """The parts of a valid chat-completions request that shape the answer."""

    model: str
    seed: int
    prompt_tokens: int
    max_tokens: int | None


_RETRY_HEADERS = {"retry-after": "1"}
_RATE_HEADERS = {
    **_RETRY_HEADERS,
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "1s",
}

# name -> (status, type, code, message, headers); an HTTP status or a named condition.
_FAILURES: dict[str, tuple[int, str, str | None, str, dict[str, str]]] = {
    "400": (400, "invalid_request_error", None, "Simulated bad request.", {}),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.", {}),
    "403": (403, "permission_error", None, "You are not allowed to use this model.", {}),
    "404": (404, "invalid_request_error", "model_not_found", "The model does not exist.", {}),
    "429": (
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests (simulated). Please try again in 1s.",
        _RATE_HEADERS,
    ),
    "500": (500, "server_error", None, "The server had an error processing your request.", {}),
    "503": (503, "server_error", None, "The engine is currently overloaded.", _RETRY_HEADERS),
    "529": (529, "overloaded_error", None, "Overloaded", _RETRY_HEADERS),
    "context_length_exceeded": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 8192 tokens; your messages are longer.",
        {},
    ),
    "content_filter": (
        400,
        "invalid_request_error",
        "content_filter",
        "The prompt was filtered due to the content management policy.",
        {},
    ),
    "insufficient_quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
        {},
    ),
}


def injected_failure(name: str) -> WireError:
    """The error asked for by ``x-simulator-fail`` (an HTTP status or a condition name)."""
    known = _FAILURES.get(name.strip().lower())
    if known is not None:
        status, type_, code, message, headers = known
        return WireError(status, message, type_, None, code, dict(headers))
    if name.strip().isdigit() and 400 <= int(name) <= 599:
        status = int(name)
        type_ = "server_error" if status >= 500 else "invalid_request_error"
        return WireError(status, f"Simulated HTTP {status}.", type_)
    return WireError(400, f"x-simulator-fail: unknown failure {name!r}", param="x-simulator-fail")


def header_ms(value: str | None, default: float, name: str) -> float:
    """A non-negative millisecond count from a request header, or ``default``."""
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not 0 <= parsed < 3_600_000:  # also refuses NaN and infinity
        raise WireError(400, f"{name} must be a number of ms in [0, 3600000)", param=name)
    return parsed


def _content_tokens(content: object, where: str) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return estimate_tokens(content)
    if not isinstance(content, list):
        raise WireError(400, f"{where} must be a string or an array of parts", param=where)
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            total += estimate_tokens(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise WireError(400, f"{where}: image_url needs a url", param=where)
            total += image_tokens(image.get("detail") if isinstance(image, dict) else None)
        elif not isinstance(kind, str):
            raise WireError(400, f"{where}: every part needs a type", param=where)
    return total


def _prompt_tokens(messages: list[Any]) -> int:
    total = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise WireError(400, f"{where} must be an object with a role", param=where)
        total += MESSAGE_OVERHEAD_TOKENS
        total += _content_tokens(message.get("content"), f"{where}.content")
    return total


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WireError(400, f"{name} must be a positive integer", param=name)
        return value
    return None


def _seed(model: str, messages: list[Any]) -> int:
    canon = json.dumps([model, messages], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(canon.encode(), digest_size=8).digest(), "big")


def parse_chat(body: object) -> ChatCall:
    """Validate a chat-completions body the way OpenAI would, or raise ``WireError``."""
    if not isinstance(body, dict):
        raise WireError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(400, "You must provide a model parameter.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "'messages' must be a non-empty array.", param="messages")
    if body.get("stream"):
        raise WireError(
            400,
            "stream=true is not supported by the simulator.",
            param="stream",
            code="unsupported_value",
        )
    if body.get("n") not in (None, 1):
        raise WireError(400, "n must be 1 in the simulator.", param="n", code="unsupported_value")
    return ChatCall(model, _seed(model, messages), _prompt_tokens(messages), _max_tokens(body))


def generate(call: ChatCall) -> tuple[str, int, str]:
    """The deterministic answer to ``call``: (text, completion tokens, finish reason)."""
    span = MAX_COMPLETION_TOKENS - MIN_COMPLETION_TOKENS + 1
    wanted = MIN_COMPLETION_TOKENS + call.seed % span
    count, finish = wanted, "stop"
    if call.max_tokens is not None and call.max_tokens < wanted:
        count, finish = call.max_tokens, "length"
    words = random.Random(call.seed).choices(VOCABULARY, k=count)
    for start in range(0, count, SENTENCE_WORDS):
        words[start] = words[start].capitalize()
        end = min(start + SENTENCE_WORDS, count) - 1
        if finish == "stop" or end < count - 1:
            words[end] += "."
    return " ".join(words), count, finish
