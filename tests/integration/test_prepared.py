"""The claim and the answer on prepared connections: planned once, on the primary key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from orchestrator.store import answered, leases, repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import new_id, utcnow
from orchestrator.store.prepared import Prepared
from tests.conftest import private_database
from tests.integration.test_lifecycle import answer_for

pytestmark = pytest.mark.integration


@pytest.fixture
def new_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database whose jobs table is new: no statistics yet, as in a new deployment."""
    with private_database(tmp_path_factory) as url:
        if make_url(url).get_backend_name() != "postgresql":
            pytest.skip("prepared statements and their plans are a Postgres matter")
        yield url


def queued(url: str, n: int) -> list[str]:
    with session_scope(get_engine(url)) as session:
        tenant = repo.create_tenant(session, name=f"prep-{secrets.token_hex(4)}").id
        rows = [
            {
                "id": new_id("job"),
                "tenant_id": tenant,
                "status": "queued",
                "tier": "fast",
                "tier_reasons": [],
                "plan": ["sim-gpt-4o-mini"],
                "priority": 9,
                "request": {"prompt": "hi"},
                "created_at": utcnow(),
            }
            for _ in range(n)
        ]
        repo.insert_jobs(session, rows=rows)
    return [str(row["id"]) for row in rows]


def explained(conn: psycopg.Connection[Any]) -> list[str]:
    """Every plan the connection runs from now on, as auto_explain tells the client."""
    try:
        conn.execute("LOAD 'auto_explain'")
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("loading auto_explain needs a superuser")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_level = 'notice'")
    plans: list[str] = []
    conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    return plans


def test_claims_and_answers_are_planned_once_and_reach_jobs_by_primary_key(
    new_table: str,
) -> None:
    # Given a new jobs table of 2,000 queued jobs, and one prepared connection
    ids = queued(new_table, 2000)
    prepared = Prepared(new_table, max_size=1)
    try:
        with prepared.pool.connection() as conn:
            plans = explained(conn)
        # When three jobs are claimed one at a time, and one of them answered
        for job_id in ids[:3]:
            claim = leases.claim_jobs_by(prepared.rows, owners={job_id: "h:1:1"}, lease_s=30)
            assert claim[job_id].job is not None
        one = answer_for(get_engine(new_table), ids[0], "h:1:1", 40)
        written = answered.write_answers_by(prepared.rows, [one])
        with prepared.pool.connection() as conn:
            counts = conn.execute(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            ).fetchall()
    finally:
        prepared.close()
    # Then the answer won, each statement was planned once, generically ...
    assert written[0] is not None and written[0].cost_micro_usd == 40
    by_kind = {
        "claim": [(g, c) for s, g, c in counts if s.startswith("UPDATE jobs SET status")],
        "answer": [(g, c) for s, g, c in counts if s.startswith("WITH attempt_rows")],
    }
    assert by_kind == {"claim": [(3, 0)], "answer": [(1, 0)]}, counts
    # ... and its plan finds the jobs by primary key, not by reading the table
    ours = [p for p in plans if "UPDATE jobs" in p]
    assert len(ours) == 4, plans
    for plan in ours:
        assert "jobs_pkey" in plan and "Seq Scan on jobs" not in plan, plan
