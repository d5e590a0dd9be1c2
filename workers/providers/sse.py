"""Streamed provider calls: server-sent events in, the canonical ``Completion`` out.

Every format streams server-sent events over one HTTP response; what differs is
what the events mean. A ``StreamParser`` (one per format, in
``workers.providers.stream_parsers``) reads them one by one, hands back each
piece of answer text as it comes, and at the end rebuilds the body the format's
non-streamed call would have answered, so the adapter's own ``parse_completion``
turns it into a ``Completion``: the streamed and the plain path cannot disagree
on usage, tool calls or finish reasons.

Failures follow ``post_json``: a transport error or a non-2xx status is mapped by
``workers.providers.errors``; an error event inside the stream is mapped as if
it had been the response (``StreamFailed``); a stream that ends before its last
event, or an event that is not what the format promises, is a ``ServerError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from workers.providers.errors import ServerError, error_from_response, error_from_transport
from workers.providers.transport import Malformed, Parser, parse_answer

DeltaSink = Callable[[str], None]
"""Called with each piece of answer text, in order, as it arrives."""


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its ``event:`` name (None when unnamed) and its data."""

    name: str | None
    data: str


class StreamFailed(Exception):
    """An error event inside a 2xx stream, with the HTTP status it stands for."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(f"error event (as HTTP {status})")
        self.status = status
        self.payload = payload

    def as_response(self) -> httpx.Response:
        """The error as the HTTP response it would have been, for ``error_from_response``."""
        return httpx.Response(self.status, json=self.payload)


class StreamParser(Protocol):
    """Reads one format's events; rebuilds the non-streamed answer body at the end."""

    @property
    def complete(self) -> bool:
        """Whether the stream's closing event (or finish) was seen."""
        ...

    def feed(self, event: Event) -> str:
        """Take one event; return the answer text it adds ('' if none)."""
        ...

    def result(self) -> Any:
        """The body a non-streamed call would have answered."""
        ...


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    """Server-sent events from decoded lines (LF or CRLF; comments skipped)."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(name, "\n".join(data))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield Event(name, "\n".join(data))


def _pump(response: httpx.Response, parser: StreamParser, on_delta: DeltaSink) -> None:
    for event in iter_events(response.iter_lines()):
        text = parser.feed(event)
        if text:
            on_delta(text)


def post_stream(
    client: httpx.Client,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    deployment: Deployment,
    request: JobRequest,
    api_key: str | None,
    parser: StreamParser,
    parse: Parser,
    on_delta: DeltaSink,
) -> Completion:
    """POST ``body`` for a streamed answer, relaying text to ``on_delta``; a ``ProviderError``."""
    where: dict[str, Any] = {"provider": deployment.provider, "model": deployment.model}
    try:
        with client.stream("POST", url, json=body, headers=headers) as response:
            if not response.is_success:
                response.read()
                raise error_from_response(response, api_key=api_key, **where)
            status = response.status_code
            _pump(response, parser, on_delta)
    except httpx.TransportError as exc:
        raise error_from_transport(exc, api_key=api_key, **where) from None
    except StreamFailed as failed:
        raise error_from_response(failed.as_response(), api_key=api_key, **where) from None
    except (ValueError, TypeError, KeyError, AttributeError, Malformed) as exc:
        reason = str(exc) if isinstance(exc, Malformed) else type(exc).__name__
        raise ServerError(f"malformed stream: {reason}", status=200, **where) from None
    if not parser.complete:
        raise ServerError("the stream ended before its last event", status=status, **where)
    return parse_answer(parser.result(), request, parse, status=status, where=where)
