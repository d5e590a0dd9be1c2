"""A streamed chat completion: the worker's deltas relayed as ``chat.completion.chunk`` events.

The worker fills the job's Redis stream (``orchestrator.jobs.completion_events.stream_key``;
``workers.streaming`` describes the entries) while the provider streams. This
module reads it with ``XREAD BLOCK`` and sends, in order:

    a first chunk (``role: assistant``) at once
    a content chunk per delta, as it arrives; an SSE comment every ``KEEPALIVE_S``
        while nothing else is sent (the job is queued, waiting or retrying)
    once the attempt's ``end`` marker arrives (or, without it, once the job row is
        final): whatever text the live relay missed, the tool calls, the finish
        chunk (with the ``switchyard`` facts), the usage chunk when
        ``stream_options.include_usage``, then ``data: [DONE]``

The job row is the truth. The client's content chunks always add up to the job's
answer, or the stream ends with an ``error`` event: if the Redis stream lost
entries (or Redis is down, or the answer came from the cache) the rest of the
text is sent from the row; if a new attempt starts after text from a failed one
was relayed (a fallback mid-answer), live relaying stops, and at the end the
rest is sent only if what the client already has is a prefix of the final
answer; otherwise the stream ends with a ``stream_interrupted`` error naming the
job, whose whole answer ``GET /v1/jobs/{id}`` still serves.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from fastapi.concurrency import run_in_threadpool

from orchestrator.api.api_metrics import CHAT_COMPLETIONS
from orchestrator.api.deps import AppState
from orchestrator.api.openai_views import answer_chunks, chunk
from orchestrator.core.errors import JobUnfinished, NotFound
from orchestrator.core.schemas import JobStatus
from orchestrator.jobs.completion_events import POLL_EVERY_S, done_key, stream_key, wait_done
from orchestrator.store import repo
from orchestrator.store.db import statement_scope
from orchestrator.store.models import Job

KEEPALIVE_S = 10.0
READ_BLOCK_MS = 500
READ_COUNT = 512
DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    """One ``data:`` event."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def load_job(state: AppState, tenant_id: str, job_id: str) -> Job:
    """The tenant's job row (``NotFound`` for another tenant's)."""
    with statement_scope(state.engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job


def unfinished(job: Job) -> JobUnfinished:
    """Why ``job`` has no answer to give (failed, expired, cancelled or still running)."""
    if JobStatus(job.status).final:
        return JobUnfinished(job.id, job.status, job.error or f"the job {job.status}")
    return JobUnfinished(job.id, job.status, f"job {job.id} still {job.status}; poll /v1/jobs")


def error_event(message: str, code: str) -> bytes:
    """OpenAI's in-stream error (the SDK raises ``APIError`` on it)."""
    return sse({"error": {"message": message, "type": code, "code": code, "param": None}})


@dataclass
class ChatStream:
    """One streamed chat completion: relays the job's deltas, then finishes from its row."""

    state: AppState
    tenant_id: str
    queued: Job
    include_usage: bool
    relayed: list[str] = field(default_factory=list)
    frozen: bool = False  # a new attempt began after text was relayed
    last_id: bytes = b"0-0"
    ended: bool = False

    async def events(self) -> AsyncIterator[bytes]:
        """The whole ``text/event-stream`` body."""
        deadline = time.monotonic() + self.state.settings.chat_timeout_s
        yield sse(chunk(self.queued, {"role": "assistant", "content": ""}))
        async for piece in self._live(deadline):
            yield piece
        job = await self._final(deadline)
        CHAT_COMPLETIONS.labels("true", job.status).inc()
        for piece in self._ending(job):
            yield piece
        yield DONE

    async def _live(self, deadline: float) -> AsyncIterator[bytes]:
        """Content chunks as the worker publishes them, until its end marker or the job ends."""
        quiet_since = polled_at = time.monotonic()
        while not self.ended and time.monotonic() < deadline:
            entries = await self._read()
            for fields in entries:
                text = self._take(fields)
                if text:
                    yield sse(chunk(self.queued, {"content": text}))
                    quiet_since = time.monotonic()
            if entries or self.ended:
                continue
            if await self._done_event():
                return
            if time.monotonic() - polled_at >= POLL_EVERY_S:
                polled_at = time.monotonic()
                if JobStatus((await self._load()).status).final:
                    return
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": waiting for the job\n\n"

    async def _done_event(self) -> bool:
        """Whether the worker's completion event for the job is waiting (not consumed)."""
        key = done_key(self.state.settings.redis_key_prefix, self.queued.id)
        try:
            return bool(await self.state.aredis.exists(key))
        except redis.RedisError:
            return False

    def _take(self, fields: dict[bytes, bytes]) -> str:
        """Apply one stream entry; the text to relay now ('' if none)."""
        kind = fields.get(b"kind")
        if kind == b"attempt" and self.relayed:
            self.frozen = True
        elif kind == b"end":
            self.ended = True
        elif kind == b"delta" and not self.frozen:
            text = fields.get(b"text", b"").decode()
            self.relayed.append(text)
            return text
        return ""

    async def _read(self) -> list[dict[bytes, bytes]]:
        key = stream_key(self.state.settings.redis_key_prefix, self.queued.id)
        try:
            answer: Any = await self.state.aredis.xread(
                {key: self.last_id}, count=READ_COUNT, block=READ_BLOCK_MS
            )
        except redis.RedisError:
            return []  # the row will finish it; ``_live`` polls it
        entries: list[dict[bytes, bytes]] = []
        for _, items in answer or ():
            for entry_id, fields in items:
                self.last_id = entry_id
                entries.append(fields)
        return entries

    async def _load(self) -> Job:
        return await run_in_threadpool(load_job, self.state, self.tenant_id, self.queued.id)

    async def _final(self, deadline: float) -> Job:
        """The job row once final (completion event or polling), or as it is at the deadline."""

        async def is_final() -> bool:
            return JobStatus((await self._load()).status).final

        await wait_done(
            self.state.aredis,
            prefix=self.state.settings.redis_key_prefix,
            job_id=self.queued.id,
            timeout_s=max(0.0, deadline - time.monotonic()),
            is_final=is_final,
        )
        return await self._load()

    def _ending(self, job: Job) -> Iterator[bytes]:
        """The rest of the answer from the row, or the error that says why there is none."""
        if job.status != JobStatus.SUCCEEDED.value:
            yield error_event(str(unfinished(job)), job.status)
            return
        sent = "".join(self.relayed)
        if not (job.output or "").startswith(sent):
            message = (
                f"the answer was interrupted: its provider failed after {len(sent)} characters "
                f"were sent, and job {job.id} finished on another attempt; its whole answer "
                f"is at GET /v1/jobs/{job.id}"
            )
            yield error_event(message, "stream_interrupted")
            return
        for piece in answer_chunks(job, include_usage=self.include_usage, skip_chars=len(sent)):
            yield sse(piece)
