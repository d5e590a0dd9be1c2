"""Engines and sessions, one engine per process and database URL.

SQLite (the embedded default) is put in WAL mode with a busy timeout so the
API and several worker processes can share the file; Postgres uses psycopg 3
with a connection pool sized for a threads-pool worker.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import ClauseElement, Connection, Engine, create_engine, event
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
PING_IDLE_S = 1.0  # a pooled connection idle this long is tested before use


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _build_engine(url: str, pool_size: int, pre_ping: bool, overflow: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if not overflow:  # every connection stays open once made: no connect per burst
        engine = create_engine(url, pool_size=2 * pool_size, max_overflow=0)
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    if pre_ping:
        _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle ``PING_IDLE_S`` or more.

    A connection given back a moment ago was working a moment ago; pinging it
    anyway cost a round trip per transaction.
    Any connection older than a database restart has been idle longer than the
    restart took; and a disconnect seen on any connection makes SQLAlchemy
    replace every connection in the pool made before it. A failed ping raises
    ``DisconnectionError``, on which the pool connects afresh, as pre-ping does.
    """

    def checked_in(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_IDLE_S:
            return  # new, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


class IdleTimes:
    """When each connection of a psycopg pool was last used, for the engine's ping rule
    (``PING_IDLE_S``) in the pool's ``check``: ``admission.loop_writes``, ``store.prepared``."""

    def __init__(self) -> None:
        self._used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def used(self, conn: object) -> None:
        self._used[conn] = time.monotonic()

    def needs_ping(self, conn: object) -> bool:
        """Whether ``conn`` is new or was idle ``PING_IDLE_S`` or more."""
        return time.monotonic() - self._used.get(conn, 0.0) >= PING_IDLE_S


def libpq_conninfo(database_url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as psycopg itself takes it (its query,
    a search_path in ``options`` say, kept)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def get_engine(
    url: str, pool_size: int = 10, *, pre_ping: bool = True, overflow: bool = True
) -> Engine:
    """The process-wide engine for ``url`` (created on first use).

    It holds up to ``2 * pool_size`` connections. With ``overflow`` (the default)
    only ``pool_size`` stay open and the rest are closed after each use; without
    it all stay open (workers, whose many threads reach for them in bursts).

    ``pre_ping`` tests a pooled connection before use when it has been idle for
    ``PING_IDLE_S`` (one extra round trip), so a request after a database restart
    does not fail; the workers turn it off,
    as they retry every write on a dropped connection anyway (``workers.execute``).
    """
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _build_engine(url, pool_size, pre_ping, overflow)
        return engine


def dispose_engines(url: str | None = None) -> None:
    """Close pooled connections of one engine, or of all (at shutdown, between tests),
    and the prepared-statement pools beside them (``store.prepared``)."""
    from orchestrator.store.prepared import close_prepared  # it imports this module

    close_prepared(url)
    with _lock:
        for key in [url] if url is not None else list(_engines):
            engine = _engines.pop(key, None)
            if engine is not None:
                _factories.pop(engine, None)
                _factories.pop(_autocommit.pop(engine, engine), None)
                engine.dispose()


_factories: dict[Engine, sessionmaker[Session]] = {}


def _factory(engine: Engine) -> sessionmaker[Session]:
    """One ``sessionmaker`` per engine: making one sets up a new Session class and its
    event dispatch, which cost more than the short transaction it would serve."""
    factory = _factories.get(engine)
    if factory is None:
        with _lock:
            factory = _factories.setdefault(engine, sessionmaker(engine, expire_on_commit=False))
    return factory


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with _factory(engine)() as session, session.begin():
        yield session


_autocommit: dict[Engine, Engine] = {}


def _autocommit_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        return engine
    found = _autocommit.get(engine)
    if found is None:
        with _lock:
            found = _autocommit.setdefault(
                engine, engine.execution_options(isolation_level="AUTOCOMMIT")
            )
    return found


@contextmanager
def statement_scope(engine: Engine) -> Iterator[Session]:
    """``session_scope`` for work that is one statement, or reads only.

    On Postgres each statement commits by itself (autocommit), so the
    transaction's ``BEGIN`` and ``COMMIT`` round trips are not made, on every
    job's path (claim, answer, admission). Never for two writes that must stand or fall together.
    Elsewhere (SQLite) it is ``session_scope``.
    """
    with session_scope(_autocommit_engine(engine)) as session:
        yield session


@dataclass(frozen=True)
class DriverSQL:
    """A Core statement compiled once for ``driver_rows``: its SQL, and the values of
    the constants it binds (the caller's parameters are added at each call)."""

    sql: str
    fixed: dict[str, Any]

    def bound(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **params}


def driver_sql(statement: ClauseElement) -> DriverSQL:
    """``statement`` compiled for psycopg, once (no expanding ``IN``: its parameters are
    rendered only at execution)."""
    compiled = statement.compile(dialect=psycopg_dialect.dialect())  # type: ignore[no-untyped-call]
    names = compiled.bind_names.items()  # type: ignore[attr-defined]
    return DriverSQL(str(compiled), {name: b.value for b, name in names if not b.required})


def fetched(cursor: psycopg.Cursor[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the statement ``cursor`` just ran, none if it returns none.

    Read from the result's status: ``cursor.description`` would build a column object
    for each of the claim's 47 columns on every run (about 0.09 ms of a worker's CPU a
    statement; BENCHMARKS.md, seventeenth session).
    """
    result = cursor.pgresult
    if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
        return []
    return cursor.fetchall()


Rows = Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]
"""Runs one fixed statement and gives its rows: ``driver_rows`` on a session's connection,
or ``prepared.Prepared.rows``."""


def driver_rows(
    connection: Connection, sql: str, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One fixed statement of a job's path, run by psycopg itself on ``connection``.

    Postgres only. The claim, the answer and the job insert are prebuilt SQL whose
    values psycopg adapts as they are; SQLAlchemy's execution and result machinery
    around them (bind processing, a description and result processor for each of the
    claim's 47 columns, per call) cost three to four times the CPU of psycopg's own
    work (BENCHMARKS.md, twelfth session). The statement joins the connection's
    transaction as any other. Errors come out as SQLAlchemy's (``OperationalError``
    and the rest, which the workers' retries know), and a connection found broken is
    invalidated with every pooled connection made before it (a database restart broke
    them all), as SQLAlchemy does with its own statements.
    """
    proxied = connection.connection
    driver = cast(psycopg.Connection[Any], proxied.driver_connection)
    try:
        with driver.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, params)
            return fetched(cursor)
    except psycopg.Error as exc:
        raise _as_sqlalchemy(connection, exc, sql, params) from exc


@contextmanager
def pipelined(connection: Connection) -> Iterator[Callable[[str, Mapping[str, Any]], None]]:
    """Within the block, ``send(sql, params)`` runs a fixed statement on ``connection``
    (in its transaction) without waiting for its end: psycopg's pipeline mode, so
    Postgres runs one statement while the caller makes the next. Postgres only.

    A statement's error surfaces at a later ``send`` or when the block ends, as
    ``driver_rows``'s would (SQLAlchemy's errors, naming no statement: which one failed
    is not known by then); the transaction is then aborted. psycopg also logs a warning
    as it leaves the aborted pipeline.
    """
    driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)

    def send(sql: str, params: Mapping[str, Any]) -> None:
        driver.execute(sql, params)

    try:
        with driver.pipeline():
            yield send
    except psycopg.Error as exc:
        raise _as_sqlalchemy(connection, exc, None, None) from exc


def _as_sqlalchemy(
    connection: Connection, exc: psycopg.Error, sql: str | None, params: Mapping[str, Any] | None
) -> Exception:
    """A psycopg error of a statement run on ``connection`` as SQLAlchemy's own."""
    proxied = connection.connection
    gone = connection.dialect.is_disconnect(cast(Any, exc), proxied.dbapi_connection, None)
    if gone:  # as SQLAlchemy does: every connection made before this one is replaced
        connection.engine.pool._invalidate(proxied, exc)
        connection.invalidate(exc)
    bound = None if params is None else dict(params)
    return DBAPIError.instance(sql, bound, exc, psycopg.Error, connection_invalidated=gone)
