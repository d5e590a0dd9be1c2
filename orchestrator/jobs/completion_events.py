"""Completion events: a worker says a job ended; a waiting API request wakes at once.

The worker pushes the job's final status onto a short-lived Redis list named
after the job (``LPUSH`` + ``EXPIRE``); a waiting request blocks on it with
``BLPOP``. A list, unlike pub/sub, keeps the event if the job ends before the
waiter starts listening. Events are a fast path only: a waiter also reads the
job from the database between short waits, so a job ended by a cancel or by
the reconciler (which send no event), or an event lost with Redis, still
wakes it.

An interactive job that succeeded carries its answer in the event (``answer_event``:
the row's columns a chat completion is made of, as the worker's write left them),
so the waiting request answers without reading the row back (``answered_job``).

A job asked with ``stream: true`` also has a Redis stream (``stream_key``) that
its worker fills with the answer's text as the provider streams it
(``workers.streaming``) and the chat-completions route relays
(``orchestrator.api.chat_stream``); it is a fast path too, and the job row
stays the truth.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from orchestrator.store.bulk import dumps
from orchestrator.store.models import Job, detached_job

EVENT_TTL_S = 120
POLL_EVERY_S = 2
# what a chat completion is made of (``orchestrator.api.openai_views``)
ANSWER_FIELDS = (
    "id",
    "tenant_id",
    "status",
    "tier",
    "created_at",
    "finished_at",
    "output",
    "tool_calls",
    "finish_reason",
    "deployment",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cost_micro_usd",
    "cache_hit",
)
_TIMES = ("created_at", "finished_at")


@dataclass(frozen=True)
class Waited:
    """How ``wait_done`` ended: whether the job is final, and its event if one came."""

    final: bool
    event: bytes | None = None


def answer_event(columns: Mapping[str, Any]) -> str:
    """The completion event of a job that succeeded, carrying its ``ANSWER_FIELDS``."""
    return dumps({name: columns.get(name) for name in ANSWER_FIELDS})


def answered_job(event: bytes | None, tenant_id: str) -> Job | None:
    """The answered job an ``answer_event`` carries (not in any session), if it is one
    and the tenant's; None for a bare status, which sends the reader to the row."""
    if not event or not event.startswith(b"{"):
        return None
    columns = json.loads(event)
    if columns.get("tenant_id") != tenant_id:
        return None
    for name in _TIMES:
        if columns.get(name) is not None:
            columns[name] = datetime.fromisoformat(columns[name])
    return detached_job(columns)


def done_key(prefix: str, job_id: str) -> str:
    return f"{prefix}switchyard:done:{job_id}"


def stream_key(prefix: str, job_id: str) -> str:
    """The Redis stream a streaming job's answer is relayed through (``workers.streaming``)."""
    return f"{prefix}switchyard:stream:{job_id}"


def publish_done(client: redis.Redis, *, prefix: str, job_id: str, status: str) -> None:
    """Tell whoever waits for ``job_id`` that it ended with ``status``."""
    publish_many_done(client, prefix=prefix, ended={job_id: status})


def publish_many_done(client: redis.Redis, *, prefix: str, ended: dict[str, str]) -> None:
    """``publish_done`` for every ``job id -> status`` of ``ended``, in one round trip
    (a status, or an ``answer_event``)."""
    with client.pipeline(transaction=False) as pipe:
        for job_id, status in ended.items():
            key = done_key(prefix, job_id)
            pipe.lpush(key, status)
            pipe.expire(key, EVENT_TTL_S)
        pipe.execute()


async def wait_done(
    client: aioredis.Redis,
    *,
    prefix: str,
    job_id: str,
    timeout_s: float,
    is_final: Callable[[], Awaitable[bool]],
    on_tick: Callable[[], Awaitable[None]] | None = None,
    fresh: bool = False,
) -> Waited:
    """Wait until the job is final (event or database), or ``timeout_s`` has passed.

    ``fresh``: the job was just submitted, so the first database read is skipped
    (its event, if it already ended, is waiting in the list).
    """
    key = done_key(prefix, job_id)
    remaining = timeout_s
    while remaining > 0:
        if not fresh and await is_final():
            return Waited(True)
        fresh = False
        step = min(POLL_EVERY_S, remaining)
        try:
            popped = await client.blpop([key], timeout=step)
        except redis.RedisError:
            popped = None
        if popped is not None:
            event = popped[1]
            return Waited(True, event.encode() if isinstance(event, str) else event)
        remaining -= step
        if on_tick is not None:
            await on_tick()
    return Waited(await is_final())
