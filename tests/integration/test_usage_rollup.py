"""The usage rollup's attempt trigger counts unbilled attempts only (migration 0016)."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, UsageDaily

pytestmark = pytest.mark.integration


def test_failed_attempts_are_counted_one_by_one_and_answered_ones_not_at_all(
    database_url: str,
) -> None:
    # Given a tenant and a job
    engine = get_engine(database_url)
    with session_scope(engine) as session:
        tenant_id = repo.create_tenant(session, name=f"rollup-{secrets.token_hex(4)}").id
        job = Job(tenant_id=tenant_id, tier="code", request={"prompt": "x"})
        session.add(job)
        session.flush()
        job_id = job.id
    deployment = f"dep-{secrets.token_hex(4)}"

    def attempt(outcome: str) -> Attempt:
        return Attempt(
            job_id=job_id,
            tenant_id=tenant_id,
            deployment=deployment,
            provider="sim",
            model="m",
            outcome=outcome,
        )

    # When three failed attempts and an answered one are written in one flush, then
    # two more failures in another transaction
    with session_scope(engine) as session:
        session.add_all([attempt("ServerError"), attempt("ok"), attempt("Overloaded")])
        session.add(attempt("ProviderTimeout"))
    with session_scope(engine) as session:
        session.add_all([attempt("ServerError"), attempt("ok"), attempt("ServerError")])

    # Then the rollup counts the five failures under the job's tier, and nothing else
    with session_scope(engine) as session:
        rows = session.execute(
            select(UsageDaily.kind, UsageDaily.tier, func.sum(UsageDaily.calls))
            .where(UsageDaily.tenant_id == tenant_id, UsageDaily.deployment == deployment)
            .group_by(UsageDaily.kind, UsageDaily.tier)
        ).all()
    assert [tuple(r) for r in rows] == [("unbilled", "code", 5)]
