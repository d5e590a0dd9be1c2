"""The one JSON decoder for what clients send: request bodies, batch lines, input-file lines.

``loads`` checks the raw bytes before it parses them, so no body can make the
API recurse, allocate without bound, or hold the interpreter for long:

    MAX_VALUES      JSON values (commas and containers outside strings) in one
                    document: more is a 413. The parse of one document is one C
                    call that holds the GIL (the event loop waits for it), so this
                    bounds that wait (about 0.1-0.3 s at the limit on a busy
                    2-core machine). A native batch larger than that goes as JSON
                    Lines, where each line is its own document.
    MAX_DEPTH       arrays and objects nested in one another, so no parser,
                    validator or serializer ever recurses deeper (``[`` 5,000 deep
                    was a 500; 150 levels of schema in a tool was a 500 too)
    MAX_INT_DIGITS  digits of an integer literal (Python's int() refuses over 4,300
                    with a ValueError from inside the parser, which was a reset)
    NaN, Infinity   and number literals that overflow a float (``1e999``) are
                    refused: they are not JSON, and no column or budget can hold them

Every refusal is a ``ValidationFailed`` (422; ``TooLarge``, 413, for the value
count; ``InvalidJSON`` for text that is not JSON at all) naming where in the
document it is, as FastAPI names fields: ``tools.0.function.parameters...``,
``[2].max_tokens`` in a native batch, ``line 3.max_tokens`` (``field_name``).
The scans run in C a chunk at a time (a thread decoding a big body lets the
event loop run between chunks); the path of a refusal is looked for only when
there is one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.core.errors import TooLarge, ValidationFailed

MAX_DEPTH = 64
MAX_INT_DIGITS = 100
MAX_VALUES = 200_000
CHUNK = 1 << 20  # bytes scanned by one C call: the longest the scan holds the GIL at once
FIELD_SEGMENTS = 8  # a refusal names at most this much of the path (deep ones get long)

Loc = Sequence[str | int]

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
# where a number may be out of bounds (an overflowing float has many digits or a long exponent)
_SUSPECT_NUMBER = re.compile(rb"\d{%d}|[eE][+-]?\d{3}|NaN|Infinity" % (MAX_INT_DIGITS + 1))
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+')
_CONSTANTS = (b"NaN", b"Infinity", b"-Infinity")


class InvalidJSON(ValidationFailed):
    """Not JSON at all (where the others are JSON past a bound)."""


def field_name(prefix: str, loc: Loc) -> str:
    """``prefix`` followed by ``loc``, dotted as FastAPI names fields (``tools.0.function``).

    ``body`` stands for the whole document and is dropped when there is a path; an
    item of a top-level array is ``[i]``, as native batches name their jobs
    (``[2].max_tokens``); any other prefix leads (``line 3.max_tokens``).
    """
    parts = [str(p) for p in loc[:FIELD_SEGMENTS]]
    if prefix != "body":
        return ".".join([prefix, *parts])
    if loc and isinstance(loc[0], int):
        parts[0] = f"[{loc[0]}]"
    return ".".join(parts) or prefix


def loads(data: bytes | str, *, field: str = "body") -> Any:
    """Parse ``data`` within the bounds above; refusals name ``field`` and the path in it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    structure = _outside_strings(raw)
    values = structure.count(b",") + structure.count(b"[") + structure.count(b"{")
    if values > MAX_VALUES:
        raise TooLarge(field, f"more than {MAX_VALUES} JSON values")
    if _too_deep(structure):
        found = _locate(raw, _deeper_than_allowed)
        where = found[0] if found else ()
        raise ValidationFailed(field_name(field, where), f"nested deeper than {MAX_DEPTH} levels")
    if _SUSPECT_NUMBER.search(structure):
        found = _locate(raw, lambda token, _: _number_refusal(token) is not None)
        if found is not None:
            where, token = found
            raise ValidationFailed(field_name(field, where), str(_number_refusal(token)))
    try:
        return json.loads(raw, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(field, f"invalid JSON: {exc.msg} at char {exc.pos}") from None
    except (RecursionError, ValueError) as exc:  # not UTF-8, or what the scans did not see
        raise InvalidJSON(field, f"invalid JSON ({type(exc).__name__})") from None


def _outside_strings(raw: bytes) -> bytes:
    """``raw`` without its string literals (brackets and commas in text do not count).

    Escaped backslashes and quotes are dropped first, so a string is then ``"[^"]*"``
    and every other piece between quotes is outside one. Chunks of ``CHUNK``
    bytes are split in turn; a string running past a chunk's end is skipped, not copied.
    """
    plain = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    parts: list[bytes] = []
    start, size = 0, len(plain)
    while start < size:
        end = min(start + CHUNK, size)
        parts.extend(plain[start:end].split(b'"')[::2])  # even pieces: outside strings
        if plain.count(b'"', start, end) % 2:  # ends inside a string: skip to its end
            close = plain.find(b'"', end)
            end = size if close < 0 else close + 1
        start = end
    return b"".join(parts)


def _too_deep(structure: bytes) -> bool:
    """Whether arrays and objects nest deeper than ``MAX_DEPTH`` (strings already removed).

    Each pass drops every innermost ``[]`` pair, which is one level of every tree:
    what is left after ``MAX_DEPTH`` passes is nested deeper.
    """
    brackets = structure.translate(_SQUARE, _NOT_BRACKETS)
    opens = brackets.count(b"[")
    if opens <= MAX_DEPTH or brackets.count(b"]") != opens:
        return False  # too few to be deep, or unbalanced: not JSON, the parser says why
    if b"[" * (MAX_DEPTH + 1) in brackets:
        return True
    for _ in range(MAX_DEPTH):
        inner = brackets.replace(b"[]", b"")
        if not inner or len(inner) == len(brackets):
            return False  # all gone, or no pair left to drop (not JSON)
        brackets = inner
    return True


def _deeper_than_allowed(token: bytes, depth: int) -> bool:
    return depth > MAX_DEPTH and token in (b"[", b"{")


def _locate(raw: bytes, refused: Callable[[bytes, int], bool]) -> tuple[Loc, bytes] | None:
    """The path and token of the first value (or container, at its depth) ``refused`` picks.

    A plain tokenizer, run only when a refusal is likely, to name its field.
    """
    stack: list[list[Any]] = []  # [key or index, is an object]
    for match in _TOKEN.finditer(raw):
        token = match.group()
        top = stack[-1] if stack else None
        if token in (b"[", b"{"):
            if refused(token, len(stack) + 1):
                return [frame[0] for frame in stack], token
            stack.append([None, True] if token == b"{" else [0, False])
        elif token in (b"]", b"}"):
            if stack:
                stack.pop()
        elif token == b",":
            if top is not None:
                top[0] = None if top[1] else top[0] + 1
        elif token == b":":
            continue
        elif top is not None and top[1] and top[0] is None and token.startswith(b'"'):
            top[0] = _key(token)
        elif refused(token, len(stack)):
            return [frame[0] for frame in stack], token
    return None


def _key(token: bytes) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token[1:-1].decode("utf-8", errors="replace")


def _number_refusal(token: bytes) -> str | None:
    """Why a number literal is refused, or None if it is fine."""
    if token in _CONSTANTS:
        return f"{token.decode()} is not a JSON number"
    if not token[:1].isdigit() and token[:1] != b"-":
        return None
    if token.lstrip(b"-").isdigit():
        if len(token.lstrip(b"-")) > MAX_INT_DIGITS:
            return f"an integer of more than {MAX_INT_DIGITS} digits"
        return None
    try:
        value = float(token)
    except ValueError:
        return None
    return None if math.isfinite(value) else "a number too large for a float"


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")  # the scan finds these first
