"""Queries that run on every scrape or tick are served by an index, not a read of the
whole jobs table (which keeps every finished job ever run)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, select

from orchestrator.api.api_metrics import unfinished_jobs
from orchestrator.store.db import get_engine
from orchestrator.store.models import Job

pytestmark = pytest.mark.integration


def sent(database_url: str, statement: Select[Any], *, inline_all: bool = False) -> str:
    """``statement``'s SQL as it is sent (values it marks inline rendered in), or with
    ``inline_all`` every value inline."""
    options = {"render_postcompile": True, "literal_binds": inline_all}
    return str(statement.compile(dialect=get_engine(database_url).dialect, compile_kwargs=options))


def plan(database_url: str, sql: str) -> str:
    """Postgres's plan for ``sql`` with sequential scans priced out: a scan of a table
    shows only if no index can serve the query."""
    engine = get_engine(database_url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        lines = conn.exec_driver_sql(f"EXPLAIN {sql}").scalars().all()
        conn.rollback()
    return "\n".join(lines)


def test_the_unfinished_jobs_gauge_reads_the_partial_status_indexes(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("partial-index plans are a Postgres matter")
    # Given the gauge's query; When Postgres plans it; Then both partial indexes serve it
    sql = sent(database_url, unfinished_jobs())
    assert "'queued'" in sql and "'running'" in sql, sql  # inline: any plan can prove it
    found = plan(database_url, sql)
    assert "Seq Scan on jobs" not in found, found
    assert "ix_jobs_status_next" in found and "ix_jobs_status_lease" in found, found


def test_the_same_states_as_one_list_would_read_the_whole_table(database_url: str) -> None:
    # The form the gauge used before: no partial index's predicate covers all three states
    if not database_url.startswith("postgresql"):
        pytest.skip("partial-index plans are a Postgres matter")
    one_list = select(Job.tier, Job.status).where(Job.status.in_(["queued", "running", "retrying"]))
    assert "Seq Scan on jobs" in plan(database_url, sent(database_url, one_list, inline_all=True))
