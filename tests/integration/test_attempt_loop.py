"""Retries, fallbacks, hand-backs and deadlines of one delivery, on a real database.

The provider is faked at its HTTP edge (``httpx.MockTransport``); the rate
limiter uses a real Redis.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select, update

from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, new_id, utcnow
from tests.integration.test_execute import Handler, completion
from workers.execute import Outcome, Runtime
from workers.guards import ContextWindowGuard, Guard, RetryGuard, RetryPolicy, default_guards

pytestmark = pytest.mark.integration
FAST_PLAN = ["sim-gpt-4o-mini", "sim-gpt-4.1"]  # windows 128k, then 1M


class Harness:
    """A runtime on the test database, its provider faked at the HTTP edge."""

    def __init__(
        self,
        database_url: str,
        handler: Handler,
        *,
        guards: list[Guard] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = Settings(database_url=database_url)
        fast_retries = [ContextWindowGuard(), RetryGuard(RetryPolicy(base_s=0.01))]
        self.runtime = Runtime(
            self.settings,
            catalog or load_catalog(self.settings),
            get_engine(database_url),
            httpx.Client(transport=httpx.MockTransport(handler)),
            guards=fast_retries if guards is None else guards,
        )

    def add_job(self, plan: list[str] = FAST_PLAN, **values: Any) -> str:
        with session_scope(self.runtime.engine) as session:
            tenant = repo.create_tenant(session, name=f"loop-{secrets.token_hex(4)}")
            job_id = new_id("job")
            row = {
                "id": job_id,
                "tenant_id": tenant.id,
                "status": "queued",
                "tier": "fast",
                "tier_reasons": [],
                "plan": plan,
                "priority": 6,
                "request": JobRequest(prompt="Hello?", max_tokens=50).model_dump(mode="json"),
                "created_at": utcnow(),
                **values,
            }
            repo.insert_jobs(session, rows=[row])
        return job_id

    def job(self, job_id: str) -> Job:
        with session_scope(self.runtime.engine) as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job

    def attempts(self, job_id: str) -> list[tuple[str, str]]:
        with session_scope(self.runtime.engine) as session:
            query = select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.started_at)
            return [(a.deployment, a.outcome) for a in session.scalars(query)]


def failing(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Handler:
    """The first deployment of the plan always fails this way; the others answer."""

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == "gpt-4o-mini":
            return httpx.Response(status, json=body, headers=headers)
        return completion(request)

    return handler


def test_a_transient_error_is_retried_on_the_same_deployment(database_url: str) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["model"])
        if len(calls) == 1:
            return httpx.Response(500, json={"error": {"message": "oops"}})
        return completion(request)

    harness = Harness(database_url, handler)
    job_id = harness.add_job()
    assert harness.runtime.execute(job_id) is Outcome.SUCCEEDED
    assert harness.attempts(job_id) == [
        ("sim-gpt-4o-mini", "ServerError"),
        ("sim-gpt-4o-mini", "ok"),
    ]


def test_used_up_retries_fall_back_to_the_next_deployment(database_url: str) -> None:
    harness = Harness(database_url, failing(503, {"error": {"message": "busy"}}))
    job_id = harness.add_job()
    assert harness.runtime.execute(job_id) is Outcome.SUCCEEDED
    assert harness.attempts(job_id) == [("sim-gpt-4o-mini", "Overloaded")] * 3 + [
        ("sim-gpt-4.1", "ok")
    ]
    assert harness.job(job_id).deployment == "sim-gpt-4.1"


def test_a_context_length_error_moves_to_a_larger_window(database_url: str) -> None:
    body = {"error": {"message": "maximum context length", "code": "context_length_exceeded"}}
    harness = Harness(database_url, failing(400, body))
    job_id = harness.add_job()
    assert harness.runtime.execute(job_id) is Outcome.SUCCEEDED
    assert harness.attempts(job_id) == [
        ("sim-gpt-4o-mini", "ContextLengthExceeded"),
        ("sim-gpt-4.1", "ok"),
    ]


def test_a_long_retry_after_hands_the_job_back_until_it_is_due(database_url: str) -> None:
    # Given a provider that asks us to come back in 20 s
    limited = failing(429, {"error": {"message": "slow down"}}, {"retry-after": "20"})
    harness = Harness(database_url, limited)
    job_id = harness.add_job()
    # When the job runs; Then it is handed back: retrying, due in ~20 s, for the reconciler
    assert harness.runtime.execute(job_id) is Outcome.DEFERRED
    job = harness.job(job_id)
    assert job.status == "retrying" and job.lease_owner is None and job.requeued_at is None
    assert 19 < due_in_s(job) <= 22.1
    assert job.progress["tries"] == {"sim-gpt-4o-mini": 1}
    # When a duplicate message arrives early; Then it does nothing
    assert harness.runtime.execute(job_id) is Outcome.SKIPPED
    assert harness.job(job_id).status == "retrying"
    # When it is due; Then the next delivery calls the same deployment again
    with session_scope(harness.runtime.engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=utcnow()))
    assert harness.runtime.execute(job_id) is Outcome.DEFERRED
    assert harness.job(job_id).progress["tries"] == {"sim-gpt-4o-mini": 2}


def due_in_s(job: Job) -> float:
    assert job.next_attempt_at is not None
    due = job.next_attempt_at
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    return (due - utcnow()).total_seconds()


def test_a_job_past_its_deadline_expires_without_a_call(database_url: str) -> None:
    harness = Harness(database_url, lambda r: pytest.fail("no call expected"))
    job_id = harness.add_job(deadline_at=utcnow() - timedelta(seconds=1))
    assert harness.runtime.execute(job_id) is Outcome.EXPIRED
    assert harness.job(job_id).status == "expired" and harness.attempts(job_id) == []


def test_a_job_whose_workers_keep_dying_is_failed(database_url: str) -> None:
    harness = Harness(database_url, lambda r: pytest.fail("no call expected"))
    job_id = harness.add_job(lease_expiries=harness.settings.max_lease_expiries)
    # When it is taken over once more after yet another dead worker
    with session_scope(harness.runtime.engine) as session:
        expired = utcnow() - timedelta(seconds=1)
        session.execute(
            update(Job).where(Job.id == job_id).values(status="running", lease_expires_at=expired)
        )
    assert harness.runtime.execute(job_id) is Outcome.FAILED
    assert "died" in (harness.job(job_id).error or "")


def test_a_deployment_out_of_rate_budget_hands_the_job_back_with_its_place_in_line(
    database_url: str, redis_url: str, key_prefix: str
) -> None:
    # Given a deployment limited to 6 calls a minute (one every 10 s), shared in Redis
    settings = Settings(database_url=database_url, redis_key_prefix=f"{key_prefix}{new_id('rl')}:")
    built_in = load_catalog(settings).get("sim-gpt-4o-mini")
    limited = built_in.model_copy(
        update={"rate_limits": built_in.rate_limits.model_copy(update={"rpm": 6})}
    )
    client = redis.Redis.from_url(redis_url)
    guards = default_guards(settings, client)
    harness = Harness(
        database_url, completion, guards=guards, catalog=Catalog(deployments=(limited,))
    )
    jobs = [harness.add_job(["sim-gpt-4o-mini"]) for _ in range(3)]
    # When three jobs run back to back; Then the first calls now, the others are handed back
    assert [harness.runtime.execute(j) for j in jobs] == [
        Outcome.SUCCEEDED,
        Outcome.DEFERRED,
        Outcome.DEFERRED,
    ]
    second, third = harness.job(jobs[1]), harness.job(jobs[2])
    assert second.status == "queued" and harness.attempts(jobs[1]) == []
    place = second.progress["slot"]
    assert place["deployment"] == "sim-gpt-4o-mini" and "at_ms" not in place
    # each comes back 2 s before its place in line: ~10 s, then ~20 s away (3% headroom)
    interval_ms = 10_000 / (1 - settings.ratelimit_headroom)
    assert third.progress["slot"]["place_ms"] - place["place_ms"] == pytest.approx(
        interval_ms, abs=1
    )
    assert 5 < due_in_s(second) < 8.5
    assert due_in_s(third) - due_in_s(second) == pytest.approx(interval_ms / 1000, abs=0.5)
    # and the hand-backs reserved nothing: the next slot is still the one after the first call
    key = f"{settings.redis_key_prefix}switchyard:ratelimit:sim-gpt-4o-mini"
    next_slot = float(client.hget(key, "rtat") or 0)
    assert next_slot == pytest.approx(place["place_ms"], abs=1)
