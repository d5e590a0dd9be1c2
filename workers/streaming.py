"""Relaying a streaming job's answer, token by token, to the API through Redis.

A job whose request has ``stream: true`` (set by ``POST /v1/chat/completions``)
is called with the adapter's ``stream`` path; ``StreamRelay`` hands the adapter
a ``DeltaPublisher`` that appends to the job's Redis stream
(``orchestrator.jobs.completion_events.stream_key``) with ``XADD ... MAXLEN ~``, refreshing a
TTL at every write. Entries (fields):

    kind=attempt deployment=NAME     an attempt begins (every call, even the first)
    kind=delta   text=TEXT           the next piece of the answer, in order
    kind=end                         the attempt's answer is complete; the job row
                                     is written next

Deltas are coalesced: text is buffered and written at most every
``FLUSH_S``, so a 400-token answer costs tens of writes, not 400.

Fallback policy (what the client sees is decided by the API, see
``orchestrator.api.chat_stream``): a failed attempt writes nothing more (its
unflushed text is dropped), and the next attempt starts with its own ``attempt``
marker. A failure before the first token, the usual case (429, 5xx, a refused
connection), costs the client nothing; text already relayed cannot be taken
back, so the API never splices two attempts together.

Redis trouble never fails a job: the publisher logs once, stops writing for
that attempt, and the API finishes the answer from the job row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from orchestrator.core.catalog import Deployment
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Completion, JobRequest
from orchestrator.jobs.completion_events import stream_key
from workers.providers.base import Provider

log = logging.getLogger(__name__)
FLUSH_S = 0.03
STREAM_MAXLEN = 10_000
STREAM_TTL_S = 900


class DeltaPublisher:
    """Writes one attempt's markers and (coalesced) text to a job's Redis stream."""

    def __init__(
        self, client: redis.Redis, key: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.key = key
        self.clock = clock
        self.buffer: list[str] = []
        self.flushed_at = clock()
        self.broken = False

    def begin(self, deployment: str) -> None:
        """Mark the start of an attempt on ``deployment``."""
        self._add({"kind": "attempt", "deployment": deployment})
        self.flushed_at = self.clock()

    def delta(self, text: str) -> None:
        """Take the next piece of text; write the buffer if the last write is old enough."""
        self.buffer.append(text)
        if self.clock() - self.flushed_at >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write the buffered text as one delta."""
        if self.buffer:
            self._add({"kind": "delta", "text": "".join(self.buffer)})
            self.buffer.clear()
        self.flushed_at = self.clock()

    def finish(self) -> None:
        """The attempt's answer is complete: write the rest and the end marker."""
        self.flush()
        self._add({"kind": "end"})

    def _add(self, fields: dict[str, str]) -> None:
        if self.broken:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self.key, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                pipe.expire(self.key, STREAM_TTL_S)
                pipe.execute()
        except redis.RedisError as exc:
            self.broken = True
            log.warning("stream relay to %s stopped (%s); the API reads the job row", self.key, exc)


class StreamRelay:
    """Calls a deployment with streaming on and publishes its text for the API to relay."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.prefix = settings.redis_key_prefix
        self.redis_url = settings.effective_redis_url
        self._redis = client
        self._lock = threading.Lock()

    def client(self) -> redis.Redis:
        """The Redis client, made on first use (most jobs never stream)."""
        with self._lock:
            if self._redis is None:
                self._redis = redis.Redis.from_url(
                    self.redis_url, socket_timeout=5, socket_connect_timeout=2
                )
            return self._redis

    def call(
        self, adapter: Provider, deployment: Deployment, request: JobRequest, *, job_id: str
    ) -> Completion:
        """One streamed attempt; its ``ProviderError`` propagates like ``complete``'s."""
        publisher = DeltaPublisher(self.client(), stream_key(self.prefix, job_id))
        publisher.begin(deployment.name)
        completion = adapter.stream(deployment, request, publisher.delta)
        publisher.finish()
        return completion
