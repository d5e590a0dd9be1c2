"""The job path's fixed statements on connections of their own: prepared once, planned once.

A worker runs the same few statements for every job: the claim (``leases``) and the
answer (``answered``). Through the engine's pool Postgres planned them on every run
(``pg_stat_statements`` under ``bench overhead``: 1,052 plans for 1,000 answers, 0.51 ms
of planning an answer and 0.26 ms a claim, beside 0.75 and 0.16 ms of execution;
BENCHMARKS.md, seventeenth session). psycopg prepares a statement only after five runs
on one connection, and even prepared, Postgres kept a custom plan for each run: a plan
for the ids at hand costs less than the generic plan's guess of ten rows.

These connections prepare every statement on its first run (``prepare_threshold=0``)
and keep its generic plan (``plan_cache_mode=force_generic_plan``), made once per
connection. A generic plan is not made again as the table grows, so one made while
the table was new and nearly empty would go on reading the whole table; these
statements reach their rows by primary key only, and ``enable_seqscan=off`` keeps
their plans there (``tests/integration/test_prepared.py``). Nothing else runs on
these connections.

Errors come out as SQLAlchemy's, as from ``db.driver_rows``, so a worker's retries
see what they always saw. A connection idle ``PING_IDLE_S`` or more is tested before
use, as the engine's are, and a broken one has every idle connection tested (a
database restart broke them all). Through PgBouncer in transaction mode the startup
``options`` are refused; set ``ignore_startup_parameters = options`` there, and the
statements are planned on every run, as through the engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from orchestrator.store.db import IdleTimes, fetched, libpq_conninfo

PLANS = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off"
APPLICATION = "switchyard-prepared"  # what pg_stat_activity shows

log = logging.getLogger(__name__)


class Prepared:
    """A small pool of autocommit connections for fixed statements found by primary key."""

    def __init__(self, database_url: str, max_size: int) -> None:
        given = make_url(database_url).query.get("options")  # a search_path, say: kept
        options = f"{given} {PLANS}" if isinstance(given, str) else PLANS
        self._idle = IdleTimes()
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            libpq_conninfo(database_url),
            min_size=1,
            max_size=max_size,
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "options": options,
                "application_name": APPLICATION,
            },
            check=self._check,
            open=False,
            name="switchyard-prepared",
        )
        self.pool.open()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """The engine's ping, for a connection idle ``PING_IDLE_S`` or more (or new)."""
        if self._idle.needs_ping(conn):
            conn.execute("SELECT 1", prepare=False)

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one statement (committed when this returns); its rows, if it returns any."""
        conn: psycopg.Connection[Any] | None = None
        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
                cursor.execute(sql, params)
                found = fetched(cursor)
                self._idle.used(conn)
                return found
        except psycopg.Error as exc:
            gone = conn is not None and conn.broken
            if gone:
                log.warning("a prepared-statement connection broke; testing the others")
                self.pool.check()
            raise DBAPIError.instance(
                sql, dict(params), exc, psycopg.Error, connection_invalidated=gone
            ) from exc

    def close(self) -> None:
        self.pool.close()


_pools: dict[str, Prepared] = {}
_lock = threading.Lock()


def prepared(database_url: str, max_size: int) -> Prepared | None:
    """The process-wide pool for ``database_url`` (made on first use); None off Postgres."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return None
    with _lock:
        found = _pools.get(database_url)
        if found is None:
            found = _pools[database_url] = Prepared(database_url, max_size)
        return found


def close_prepared(database_url: str | None = None) -> None:
    """Close one pool, or all (``db.dispose_engines`` calls this)."""
    with _lock:
        for key in [database_url] if database_url is not None else list(_pools):
            pool = _pools.pop(key, None)
            if pool is not None:
                pool.close()
