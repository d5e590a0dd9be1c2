"""Completion events: a worker says a job ended; a waiting API request wakes at once.

The worker pushes the job's final status onto a short-lived Redis list named
after the job (``LPUSH`` + ``EXPIRE``); a waiting request blocks on it with
``BLPOP``. A list, unlike pub/sub, keeps the event if the job ends before the
waiter starts listening. Events are a fast path only: a waiter also reads the
job from the database between short waits, so a job ended by a cancel or by
the reconciler (which send no event), or an event lost with Redis, still
wakes it.

A job asked with ``stream: true`` also has a Redis stream (``stream_key``) that
its worker fills with the answer's text as the provider streams it
(``workers.streaming``) and the chat-completions route relays
(``orchestrator.api.chat_stream``); it is a fast path too, and the job row
stays the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis

EVENT_TTL_S = 120
POLL_EVERY_S = 2


def done_key(prefix: str, job_id: str) -> str:
    return f"{prefix}switchyard:done:{job_id}"


def stream_key(prefix: str, job_id: str) -> str:
    """The Redis stream a streaming job's answer is relayed through (``workers.streaming``)."""
    return f"{prefix}switchyard:stream:{job_id}"


def publish_done(client: redis.Redis, *, prefix: str, job_id: str, status: str) -> None:
    """Tell whoever waits for ``job_id`` that it ended with ``status``."""
    publish_many_done(client, prefix=prefix, ended={job_id: status})


def publish_many_done(client: redis.Redis, *, prefix: str, ended: dict[str, str]) -> None:
    """``publish_done`` for every ``job id -> status`` of ``ended``, in one round trip."""
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
) -> bool:
    """Wait until the job is final (event or database); False if ``timeout_s`` passed first.

    ``fresh``: the job was just submitted, so the first database read is skipped
    (its event, if it already ended, is waiting in the list).
    """
    key = done_key(prefix, job_id)
    remaining = timeout_s
    while remaining > 0:
        if not fresh and await is_final():
            return True
        fresh = False
        step = min(POLL_EVERY_S, remaining)
        try:
            popped = await client.blpop([key], timeout=step)
        except redis.RedisError:
            popped = None
        if popped is not None:
            return True
        remaining -= step
        if on_tick is not None:
            await on_tick()
    return await is_final()
