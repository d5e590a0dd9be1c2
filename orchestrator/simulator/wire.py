"""What the three wire formats have in common inside the simulator.

Requests are read as plain JSON, not through pydantic models: the simulator
must accept whatever real clients send (unknown roles, extra fields, parts it
does not understand) and must stay cheap per request, because throughput
benchmarks measure against it. Each format module (``openai_wire``,
``anthropic_wire``, ``gemini_wire``) turns a body into a ``SimCall`` and an
``Answer`` back into its own JSON; everything refused is a ``SimError``, which
each format renders in its provider's error shape.

Answers are deterministic: the text is drawn from a fixed vocabulary by a
``random.Random`` seeded with a hash of (model, conversation), and its length
(20..400 tokens, one token per word) follows from the same hash. A request
offering tools (and not answering a tool call) gets a call to the first tool,
or the one it forces, with arguments made from the tool's schema. Reasoning
models (o1/o3/o4, gpt-5, names with "thinking") also spend hidden reasoning
tokens: half as many as they show.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

MIN_COMPLETION_TOKENS = 20
MAX_COMPLETION_TOKENS = 400
SENTENCE_WORDS = 12
MIN_CACHEABLE_TOKENS = 1024
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)|thinking|gemini-2\.5", re.I)

_WORDS = """the a of to and in is that for it as with on by this be are from at or an
    which model request queue worker token tier route batch cost budget latency
    signal system answer result value data cluster provider deployment retry limit
    window context prompt image vision reasoning code fast plan order state lease
    ledger metric rate pace flow carries returns measures keeps sends reads writes
    holds moves counts checks waits runs starts ends finds shows gives takes makes
    small large quick steady careful simple clear exact early late every each
    some most first last next other same new old good best high low"""
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())


class SimError(Exception):
    """A refusal or an injected failure, in neutral form; each format renders it.

    ``kind`` is one of: invalid_request, authentication, permission, not_found,
    rate_limit, server, overloaded, timeout, context_length, content_filter,
    insufficient_quota.
    """

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        stat: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.stat = stat or str(status)  # the key it is counted under in /_sim/stats


@dataclass(slots=True)
class ToolSpec:
    """The tool the simulated model will call, with its JSON-schema parameters."""

    name: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class SimCall:
    """The parts of a valid request that shape the answer, whatever the format."""

    model: str
    seed: int
    prompt_tokens: int
    max_tokens: int | None
    tool: ToolSpec | None = None
    json_mode: bool = False
    prefix_key: int | None = None  # hash of the cacheable prompt prefix
    prefix_tokens: int = 0
    topic: int = 0  # hash of the first user turn: which input this is (simulator.faults)
    json_schema: dict[str, Any] | None = None  # a JSON answer follows it (required keys)


@dataclass(slots=True)
class Answer:
    """The simulated model's reply and its usage, before a format renders it."""

    text: str
    output_tokens: int
    finish: str  # "stop", "length" or "tool"
    reasoning_tokens: int = 0
    tool_name: str | None = None
    tool_arguments: dict[str, Any] = field(default_factory=dict)
    cached_tokens: int = 0
    cache_write_tokens: int = 0


def header_ms(value: str | None, default: float, name: str) -> float:
    """A non-negative millisecond count from a request header, or ``default``."""
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not 0 <= parsed < 3_600_000:  # also refuses NaN and infinity
        raise SimError(400, f"{name} must be a number of ms in [0, 3600000)", param=name)
    return parsed


def seed_of(*parts: object) -> int:
    """A stable 64-bit hash of JSON-able parts."""
    canon = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.blake2b(canon.encode(), digest_size=8).digest(), "big")


def positive_int(body: dict[str, Any], *names: str) -> int | None:
    """The first of ``names`` present in ``body``, which must be a positive integer."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SimError(400, f"{name} must be a positive integer", param=name)
        return value
    return None


def example_value(schema: object) -> Any:
    """A placeholder value that fits a JSON schema (required properties only)."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        return {name: example_value(props.get(name)) for name in required if name in props}
    defaults: dict[str, Any] = {"string": "example", "integer": 1, "number": 1.0}
    defaults |= {"boolean": True, "array": []}
    return defaults.get(str(kind))


def _words(seed: int, count: int, finished: bool) -> str:
    words = random.Random(seed).choices(VOCABULARY, k=count)
    for start in range(0, count, SENTENCE_WORDS):
        words[start] = words[start].capitalize()
        end = min(start + SENTENCE_WORDS, count) - 1
        if finished or end < count - 1:
            words[end] += "."
    return " ".join(words)


def generate(call: SimCall) -> Answer:
    """The deterministic answer to ``call``: text, a tool call, or JSON."""
    if call.tool is not None:
        arguments = example_value(call.tool.parameters) or {}
        tokens = max(1, len(json.dumps(arguments)) // 4) + 5
        return Answer("", tokens, "tool", tool_name=call.tool.name, tool_arguments=arguments)
    span = MAX_COMPLETION_TOKENS - MIN_COMPLETION_TOKENS + 1
    wanted = MIN_COMPLETION_TOKENS + call.seed % span
    hidden = wanted // 2 if _REASONING_MODEL.search(call.model) else 0
    count, finish = wanted, "stop"
    if call.max_tokens is not None and call.max_tokens < wanted + hidden:
        hidden = min(hidden, call.max_tokens // 2)
        count, finish = call.max_tokens - hidden, "length"
    text = _words(call.seed, count, finish == "stop")
    if call.json_mode and call.json_schema:
        text = json.dumps(example_value(call.json_schema))
    elif call.json_mode:
        text = json.dumps({"answer": text})
    return Answer(text, count + hidden, finish, reasoning_tokens=hidden)


# x-simulator-fail name -> (status, kind, code, message, headers)
_RETRY = {"retry-after": "1"}
FAILURES: dict[str, tuple[int, str, str | None, str, dict[str, str]]] = {
    "400": (400, "invalid_request", None, "Simulated bad request.", {}),
    "401": (401, "authentication", "invalid_api_key", "Incorrect API key provided.", {}),
    "403": (403, "permission", None, "You are not allowed to use this model.", {}),
    "404": (404, "not_found", "model_not_found", "The model does not exist.", {}),
    "429": (
        429,
        "rate_limit",
        "rate_limit_exceeded",
        "Rate limit reached for requests (simulated). Please try again in 1s.",
        {**_RETRY, "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"},
    ),
    "500": (500, "server", None, "The server had an error processing your request.", {}),
    "503": (503, "overloaded", None, "The engine is currently overloaded.", _RETRY),
    "529": (529, "overloaded", None, "Overloaded", _RETRY),
    "504": (504, "timeout", None, "The request timed out.", {}),
    "context_length_exceeded": (
        400,
        "context_length",
        "context_length_exceeded",
        "This model's maximum context length is 8192 tokens; your messages are longer.",
        {},
    ),
    "content_filter": (
        400,
        "content_filter",
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


def injected_failure(name: str) -> SimError:
    """The error asked for by ``x-simulator-fail`` (an HTTP status or a condition name)."""
    key = name.strip().lower()
    known = FAILURES.get(key)
    if known is not None:
        status, kind, code, message, headers = known
        stat = key if not key.isdigit() else None
        return SimError(status, message, kind, code=code, headers=dict(headers), stat=stat)
    if key.isdigit() and 400 <= int(key) <= 599:
        status = int(key)
        return SimError(
            status, f"Simulated HTTP {status}.", "server" if status >= 500 else "invalid_request"
        )
    return SimError(400, f"x-simulator-fail: unknown failure {name!r}", param="x-simulator-fail")
