"""Streamed answers in the simulator: frames from each format, paced by the latency.

A streamed answer is the same deterministic ``Answer`` as a plain one, cut into
server-sent events by its format's ``stream_frames`` (``openai_wire``,
``anthropic_wire``, ``gemini_wire``): a head (the opening events), a body (one
event per token or small group of tokens, tool-call argument pieces included) and
a tail (finish, usage, terminator).

Pacing: the request's latency is the whole answer's duration. The first token
comes after ``FIRST_TOKEN_SHARE`` of it (the server waits that long before the
status line, like a real provider's time to first token); the body's events are
spread evenly over the rest, and the tail follows the last token. Events that
fall due together go out in one write, so a zero latency costs no sleeps.

A ``malformed`` failure injected into a streamed answer cuts it off after half
its body, without the tail: a connection that broke mid-answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import StreamingResponse

FIRST_TOKEN_SHARE = 0.2
_PIECE = re.compile(r"\s*\S+")


@dataclass(slots=True)
class Frames:
    """A streamed answer as bytes: opening events, paced token events, closing events."""

    head: list[bytes] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    tail: list[bytes] = field(default_factory=list)


def sse(data: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    """One server-sent event (``event:`` line only when named)."""
    end = "\r\n" if crlf else "\n"
    text = json.dumps(data, separators=(",", ":")) if not isinstance(data, str) else data
    head = f"event: {event}{end}" if event else ""
    return f"{head}data: {text}{end}{end}".encode()


def text_pieces(text: str, words: int = 1) -> list[str]:
    """``text`` in pieces of ``words`` words, each with its leading whitespace.

    The pieces always join back to ``text`` exactly (trailing whitespace rides
    on the last piece).
    """
    tokens = _PIECE.findall(text)
    pieces = ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    rest = text[len("".join(pieces)) :]
    if rest and pieces:
        pieces[-1] += rest
    elif rest:
        pieces.append(rest)
    return pieces


def json_pieces(text: str, size: int = 8) -> list[str]:
    """A JSON string (tool arguments) in pieces of ``size`` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


async def paced(frames: Frames, spread_s: float, *, cut: bool = False) -> AsyncIterator[bytes]:
    """Yield ``frames`` with the body spread over ``spread_s``; ``cut`` stops halfway."""
    body = frames.body[: max(1, len(frames.body) // 2)] if cut else frames.body
    step_s = spread_s / max(1, len(frames.body))
    start = time.monotonic()
    pending = b"".join(frames.head)
    for index, frame in enumerate(body):
        wait_s = start + index * step_s - time.monotonic()
        if wait_s > 0.001:
            if pending:
                yield pending
                pending = b""
            await asyncio.sleep(wait_s)
        pending += frame
    if pending:
        yield pending
    if cut:
        return
    wait_s = start + spread_s - time.monotonic()
    if wait_s > 0.001:
        await asyncio.sleep(wait_s)
    yield b"".join(frames.tail)


def respond(
    frames: Frames, spread_s: float, headers: dict[str, str], *, cut: bool = False
) -> StreamingResponse:
    """The ``text/event-stream`` response for ``frames``."""
    return StreamingResponse(
        paced(frames, spread_s, cut=cut),
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache"},
    )
