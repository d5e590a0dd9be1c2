"""``db.driver_rows``: the job path's fixed statements run by psycopg itself, on Postgres.

They join the session's transaction, and fail as SQLAlchemy's own statements fail: the
same exception classes (which the workers' database retries catch), and a connection
the server dropped is invalidated, so the pool does not lend it out again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from loadtests._services import libpq_url
from orchestrator.store import repo
from orchestrator.store.db import (
    dispose_engines,
    driver_rows,
    get_engine,
    pipelined,
    session_scope,
)
from orchestrator.store.models import Job, new_id, utcnow

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("driver_rows is the Postgres path (SQLite runs SQLAlchemy's own)")
    yield get_engine(database_url)


def _job(tenant_id: str) -> dict[str, object]:
    return {
        "id": new_id("job"),
        "tenant_id": tenant_id,
        "status": "queued",
        "tier": "fast",
        "tier_reasons": [],
        "plan": ["sim-gpt-4o-mini"],
        "priority": 6,
        "request": {"prompt": "hi"},
        "created_at": utcnow(),
    }


def test_rows_come_back_keyed_by_column_and_join_the_sessions_transaction(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        tenant = repo.create_tenant(session, name=f"drv-{secrets.token_hex(4)}").id
    row = _job(tenant)
    # Given a transaction that inserts a job through psycopg, then fails
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        repo.insert_jobs(session, rows=[row])
        query = "SELECT id, request FROM jobs WHERE id = %(id)s"
        found = driver_rows(session.connection(), query, {"id": row["id"]})
        # Then the statement saw the transaction's own row, its JSON decoded
        assert found == [{"id": row["id"], "request": {"prompt": "hi"}}]
        raise RuntimeError("roll back")
    # and the rollback took the row with it
    with session_scope(engine) as session:
        assert session.scalar(select(Job.id).where(Job.id == row["id"])) is None


def test_a_failing_statement_raises_sqlalchemys_exception(engine: Engine) -> None:
    with session_scope(engine) as session:
        tenant = repo.create_tenant(session, name=f"drv-{secrets.token_hex(4)}").id
    row = _job(tenant)
    with session_scope(engine) as session:
        repo.insert_jobs(session, rows=[row])
    with pytest.raises(IntegrityError) as duplicate, session_scope(engine) as session:
        repo.insert_jobs(session, rows=[row])  # the same primary key again
    assert isinstance(duplicate.value.orig, psycopg.errors.UniqueViolation)
    with pytest.raises(ProgrammingError), session_scope(engine) as session:
        driver_rows(session.connection(), "SELECT no_such_column FROM jobs", {})


def test_a_connection_the_server_dropped_is_invalidated_and_raised_as_operational(
    engine: Engine, database_url: str
) -> None:
    with session_scope(engine) as session:
        connection = session.connection()
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(OperationalError) as dropped:
            driver_rows(connection, "SELECT 1 AS one", {})
        assert dropped.value.connection_invalidated
        assert connection.invalidated
        session.rollback()
    # the pool lends a working connection next
    with session_scope(engine) as session:
        assert driver_rows(session.connection(), "SELECT 1 AS one", {}) == [{"one": 1}]


def test_a_dropped_connection_renews_every_pooled_connection_made_before_it(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("driver_rows is the Postgres path (SQLite runs SQLAlchemy's own)")
    # Given a pool of its own holding four connections, whose server processes all end
    # (a database restart), with no ping before lending (as the workers run)
    name = f"sytest-drv-{secrets.token_hex(4)}"
    url = make_url(database_url).update_query_dict({"application_name": name})
    engine = get_engine(url.render_as_string(hide_password=False), pre_ping=False)
    held = [engine.connect() for _ in range(4)]
    for connection in held:
        connection.exec_driver_sql("SELECT 1")
        connection.close()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        ours = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        for (pid,) in admin.execute(ours, (name,)).fetchall():
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(50):  # until the server has let them go
            if not admin.execute(ours, (name,)).fetchall():
                break
            time.sleep(0.1)
    # When four statements run one after the other through driver_rows
    failures = 0
    for _ in range(4):
        try:
            with session_scope(engine) as session:
                assert driver_rows(session.connection(), "SELECT 1 AS one", {}) == [{"one": 1}]
        except OperationalError:
            failures += 1
    # Then only the first met a dead connection: it renewed the rest of the pool
    assert failures == 1
    dispose_engines(url.render_as_string(hide_password=False))


def test_pipelined_statements_run_while_the_caller_goes_on_in_one_transaction(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        tenant = repo.create_tenant(session, name=f"drv-{secrets.token_hex(4)}").id
    first, second = _job(tenant), _job(tenant)
    with session_scope(engine) as session:
        with pipelined(session.connection()) as send:
            started = time.monotonic()
            send("SELECT pg_sleep(0.5)", {})
            sent_s = time.monotonic() - started  # sent, not waited for
            with repo.job_inserts(session) as insert:
                insert([first])
        ended_s = time.monotonic() - started  # the block waits for every statement
    assert sent_s < 0.25 <= 0.5 <= ended_s
    with session_scope(engine) as session:
        assert session.scalar(select(Job.id).where(Job.id == first["id"])) == first["id"]
    # a statement that fails fails the block, as SQLAlchemy's own, and the transaction
    with (
        pytest.raises(IntegrityError) as duplicate,
        session_scope(engine) as session,
        repo.job_inserts(session) as insert,
    ):
        insert([second])
        insert([first])  # the same primary key again
    assert isinstance(duplicate.value.orig, psycopg.errors.UniqueViolation)
    with session_scope(engine) as session:
        assert session.scalar(select(Job.id).where(Job.id == second["id"])) is None
