"""A batch admitted part by part (issue 24): on Postgres each part's rows go to the
database while the next part is routed, in one transaction, so a line that cannot be
routed still refuses the whole batch and nothing of it is written or sent (on SQLite
every line is routed first; the same tests hold)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from orchestrator.admission.dispatch import PART_LINES, Dispatcher
from orchestrator.core.errors import ValidationFailed
from orchestrator.core.schemas import JobRequest
from orchestrator.store.db import session_scope
from orchestrator.store.models import Batch, Job
from tests.integration.test_loop_admission import dispatcher_for, messages_under, tenant_for

pytestmark = pytest.mark.integration

LINES = 2 * PART_LINES + 200  # three parts


@pytest.fixture
def prefix(key_prefix: str) -> str:
    """A prefix of this test's own, under the session's (whose keys are deleted at its end):
    no worker consumes its queues."""
    return f"{key_prefix}admit-{secrets.token_hex(4)}:"


@pytest.fixture
def admission(database_url: str, redis_url: str, prefix: str) -> tuple[Dispatcher, Engine]:
    # on SQLite every line is routed before the one transaction: the same rules hold
    return dispatcher_for(database_url, redis_url, prefix)


def lines(n: int, *, tag: str) -> list[JobRequest]:
    tiers = ("fast", "reasoning", "code")
    return [
        JobRequest.model_validate({"prompt": f"{tag} line {i}", "tier": tiers[i % 3]})
        for i in range(n)
    ]


def published_ids(redis_url: str, prefix: str) -> list[str]:
    """The job ids of every message sent under ``prefix``."""
    ids: list[str] = []
    for messages in messages_under(redis_url, prefix).values():
        for raw in messages:
            args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
            ids += args[0] if isinstance(args[0], list) else [args[0]]
    return ids


def counts(engine: Engine, tenant_id: str) -> tuple[int, int]:
    with session_scope(engine) as session:
        batches = session.scalar(select(func.count()).where(Batch.tenant_id == tenant_id))
        jobs = session.scalar(select(func.count()).where(Job.tenant_id == tenant_id))
    return int(batches or 0), int(jobs or 0)


def test_every_part_is_written_in_order_and_sent_after_the_commit(
    admission: tuple[Dispatcher, Engine], redis_url: str, prefix: str
) -> None:
    dispatcher, engine = admission
    tenant_id = tenant_for(engine, f"admit-{prefix}")
    batch_id = dispatcher.submit_batch(tenant_id=tenant_id, requests=lines(LINES, tag="ok"))
    with session_scope(engine) as session:
        rows = session.execute(
            select(Job.id, Job.batch_index, Job.tier, Job.request)
            .where(Job.batch_id == batch_id)
            .order_by(Job.batch_index)
        ).all()
        total = session.scalar(select(Batch.total).where(Batch.id == batch_id))
    assert total == LINES
    assert [r.batch_index for r in rows] == list(range(LINES))
    assert [r.request["prompt"] for r in rows[-2:]] == [
        f"ok line {LINES - 2}",
        f"ok line {LINES - 1}",
    ]
    assert rows[PART_LINES].tier == ("fast", "reasoning", "code")[PART_LINES % 3]
    assert sorted(published_ids(redis_url, prefix)) == sorted(r.id for r in rows)


def test_a_line_that_cannot_be_routed_in_a_later_part_refuses_the_whole_batch(
    admission: tuple[Dispatcher, Engine], redis_url: str, prefix: str
) -> None:
    dispatcher, engine = admission
    tenant_id = tenant_for(engine, f"admit-bad-{prefix}")
    requests = lines(LINES, tag="bad")
    bad = 2 * PART_LINES + 50  # two parts are in Postgres when it is routed
    too_long = "x" * (dispatcher.settings.max_prompt_chars + 1)
    requests[bad] = JobRequest.model_validate({"prompt": too_long, "tier": "fast"})
    with pytest.raises(ValidationFailed) as refused:
        dispatcher.submit_batch(tenant_id=tenant_id, requests=requests)
    assert refused.value.field == f"[{bad}]"
    assert counts(engine, tenant_id) == (0, 0)  # neither the batch nor any of its jobs
    assert published_ids(redis_url, prefix) == []


def test_a_tenant_with_a_budget_gets_the_same_rows_with_their_reservation(
    admission: tuple[Dispatcher, Engine], prefix: str
) -> None:
    dispatcher, engine = admission
    plain = tenant_for(engine, f"admit-plain-{prefix}")
    budgeted = tenant_for(engine, f"admit-budget-{prefix}", budget_daily_micro_usd=10**12)
    made: dict[str, list[dict[str, Any]]] = {}
    for tenant_id in (plain, budgeted):
        batch_id = dispatcher.submit_batch(tenant_id=tenant_id, requests=lines(3, tag="same"))
        with session_scope(engine) as session:
            jobs = session.scalars(
                select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index)
            ).all()
            made[tenant_id] = [
                {
                    "tier": j.tier,
                    "plan": j.plan,
                    "request": j.request,
                    "held": j.budget_held_micro_usd,
                }
                for j in jobs
            ]
    assert [{**r, "held": 0} for r in made[budgeted]] == made[plain]
    assert all(r["held"] == 0 for r in made[plain])
    assert all(r["held"] > 0 for r in made[budgeted])
