"""The API event loop's own connections, for admission that stays on the loop (issue 24).

A small interactive job whose admission needs nothing but memory
(``orchestrator.core.loop_guard``) is written and published from the event loop,
without a thread: the job row by psycopg's async connection, from a
``psycopg_pool.AsyncConnectionPool`` (autocommit: one ``INSERT``, as
``statement_scope`` sends it), and its message by the API's asyncio Redis
client. Handing admission to a thread-pool thread and back cost 1.3-1.8 ms of the
median (BENCHMARKS.md, fifteenth session): both threads woke cold and passed the
interpreter lock between them.

Nothing changes in what is written or sent, nor in its order: the statements are
``store.bulk``'s, and the message is kombu's and Celery's own, built by the same
``publish`` with a producer kept for the loop whose batch only collects its Redis
commands (``queues.broker_transport.collected``), then sent in one round trip; a
job that goes now and alone (an interactive one) gets a copy of the message that
``publish`` built for a stand-in job with its own ids in place
(``queues.message_mold``: a fifth of the CPU). The row is committed before its
message is sent. A connection idle for ``PING_IDLE_S`` is tested before use, as the
engine's are. Errors come out as SQLAlchemy's (``DBAPIError``), as on the thread path.

Off Postgres (SQLite), before ``open()`` (an app used without its lifespan), or
while the producer cannot be made (Redis away at start-up; tried again every
``RETRY_S``), ``ready()`` is false and admission takes the thread path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import psycopg
import redis.asyncio as aioredis
from celery import Celery
from kombu.messaging import Producer
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from orchestrator.queues.app import QueuedJob, publish
from orchestrator.queues.broker_transport import collected
from orchestrator.queues.message_mold import MessageMold
from orchestrator.store.bulk import json_inserts
from orchestrator.store.db import IdleTimes, libpq_conninfo
from orchestrator.store.models import Job

POOL_SIZE = 10  # connections at most; the loop holds one only for its INSERT
RETRY_S = 5.0  # between tries to make the producer

log = logging.getLogger(__name__)


class LoopWrites:
    """A Postgres pool and a message producer for the event loop; ``open`` in the lifespan."""

    def __init__(
        self,
        database_url: str,
        celery: Celery,
        aredis: aioredis.Redis,
        *,
        application_name: str = "switchyard-api-loop",  # what pg_stat_activity shows
    ) -> None:
        self.database_url = database_url
        self.application_name = application_name
        self.celery = celery
        self.aredis = aredis
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self.producer: Producer | None = None
        self.mold: MessageMold | None = None  # a lone job's message, cast (queues.message_mold)
        self._idle = IdleTimes()
        self._tried_at = -RETRY_S
        self._making: asyncio.Task[None] | None = None

    async def ready(self) -> bool:
        """Whether the loop can admit: the pool is open and the producer made. While the
        producer is missing, it is made again in the background (no request waits)."""
        if self.pool is None:
            return False
        idle = self._making is None or self._making.done()
        if self.producer is None and idle and time.monotonic() - self._tried_at >= RETRY_S:
            self._making = asyncio.create_task(self._make_producer())
        return self.producer is not None

    async def open(self) -> None:
        """Open the pool and make the producer (its channel pings Redis once: in a thread)."""
        if make_url(self.database_url).get_backend_name() != "postgresql":
            return
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            libpq_conninfo(self.database_url),
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "application_name": self.application_name},
            check=self._check,
            open=False,
        )
        await pool.open()
        self.pool = pool
        await self._make_producer()

    async def close(self) -> None:
        if self._making is not None:
            self._making.cancel()
        pool, self.pool = self.pool, None
        producer, self.producer, self.mold = self.producer, None, None
        if pool is not None:
            await pool.close()
        if producer is not None:
            producer.release()

    async def _make_producer(self) -> None:
        def made() -> Producer:
            producer = self.celery.amqp.Producer(self.celery.connection_for_write())
            _ = producer.channel  # connects now, in a thread, not on the loop
            return cast(Producer, producer)

        self._tried_at = time.monotonic()
        try:
            self.producer = await run_in_threadpool(made)
            self.mold = MessageMold(self.celery, self.producer)
        except Exception as exc:  # the broker is away: admission takes the thread path
            log.warning("no message producer for the event loop yet: %s", exc)

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The engine's ping, for a connection idle ``PING_IDLE_S`` or more (or new)."""
        if self._idle.needs_ping(conn):
            await conn.execute("SELECT 1")

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert job rows, committed when this returns."""
        for sql, params in json_inserts(cast(Table, Job.__table__), rows):
            try:
                await self._insert(sql, params)
            except psycopg.Error as exc:
                raise DBAPIError.instance(sql, dict(params), exc, psycopg.Error) from exc

    async def _insert(self, sql: str, params: dict[str, str]) -> None:
        """One insert; once more on a fresh connection if its connection broke.

        A broken connection (a database restart) has every other pooled connection
        tested (``pool.check``), as the engine replaces its pool. Rows carry new random
        ids, so a second try refused for a duplicate id means the first one committed
        before its reply was lost: the rows are there.
        """
        assert self.pool is not None, "open() first"
        for second in (False, True):
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(sql, params)
                    self._idle.used(conn)
                    return
            except psycopg.errors.UniqueViolation:
                if second:
                    return  # written by the first try
                raise
            except psycopg.OperationalError:
                if second or conn is None or not conn.broken:
                    raise
                log.warning("a pooled connection of the event loop broke; testing the others")
                await self.pool.check()

    async def publish(self, jobs: Iterable[QueuedJob]) -> None:
        """Send the jobs' messages, as ``queues.app.publish`` would, in one round trip
        (a lone job's cast from the mold)."""
        assert self.producer is not None and self.mold is not None, "open() first"
        jobs = list(jobs)
        commands = self.mold.commands(jobs)
        if commands is None:
            with collected() as commands:
                publish(self.celery, jobs, producer=self.producer)
        if len(commands) == 1:  # one message: one command (a pipeline costs more CPU)
            name, args = commands[0]
            await getattr(self.aredis, name)(*args)
            return
        async with self.aredis.pipeline(transaction=False) as pipe:
            for name, args in commands:
                getattr(pipe, name)(*args)
            await pipe.execute()
