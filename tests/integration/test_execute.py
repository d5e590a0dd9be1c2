"""The attempt loop against a real database, with the provider faked at its HTTP edge."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from orchestrator.api.openai_views import chat_completion, facts_headers
from orchestrator.core.batching import alone
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.jobs.completion_events import answered_job
from orchestrator.routing import route
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry, new_id, utcnow
from workers.execute import Outcome, Runtime

pytestmark = pytest.mark.integration

Handler = Callable[[httpx.Request], httpx.Response]


def completion(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "forty-two"},
                }
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
        },
    )


def make_runtime(database_url: str, handler: Handler, **knobs: Any) -> Runtime:
    settings = Settings(database_url=database_url, **knobs)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Runtime(settings, load_catalog(settings), get_engine(database_url), http)


def queued_job(runtime: Runtime, prompt: str) -> str:
    request = JobRequest(prompt=prompt)
    decision = route(request, runtime.catalog)
    with session_scope(runtime.engine) as session:
        tenant = repo.create_tenant(session, name=f"exec-{secrets.token_hex(4)}")
        job_id = new_id("job")
        repo.insert_jobs(
            session,
            rows=[
                {
                    "id": job_id,
                    "tenant_id": tenant.id,
                    "status": "queued",
                    "tier": decision.tier.value,
                    "tier_reasons": list(decision.reasons),
                    "plan": [d.name for d in decision.plan],
                    "priority": 0,
                    "request": request.model_dump(mode="json"),
                    "created_at": utcnow(),
                }
            ],
        )
    return job_id


def first_call_busy() -> Handler:
    """A provider that answers 503 to the first call and a completion to every other."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["model"])
        if len(calls) == 1:
            return httpx.Response(503, json={"error": {"message": "busy", "type": "server"}})
        return completion(request)

    return handler


def test_redelivered_message_does_nothing(database_url: str) -> None:
    # Given a queued job that a worker has executed
    runtime = make_runtime(database_url, completion)
    job_id = queued_job(runtime, "Say hello.")
    assert runtime.execute(job_id) is Outcome.SUCCEEDED
    # When the same message is delivered again
    again = runtime.execute(job_id)
    # Then it is skipped: one attempt, one ledger row, cost as priced
    assert again is Outcome.SKIPPED
    with session_scope(runtime.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "succeeded" and job.output == "forty-two"
        ledger = list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)))
        assert len(ledger) == 1
        deployment = runtime.catalog.get(job.deployment or "")
        expected = 1000 * deployment.input_usd_per_mtok + 500 * deployment.output_usd_per_mtok
        assert job.cost_micro_usd == ledger[0].cost_micro_usd == int(expected)


def test_retryable_error_falls_back_and_bills_only_the_answer(database_url: str) -> None:
    # Given one call per deployment, and a plan whose first deployment answers 503
    runtime = make_runtime(database_url, first_call_busy(), max_tries_per_deployment=1)
    job_id = queued_job(runtime, "What is the capital of Peru?")
    # When it runs
    assert runtime.execute(job_id) is Outcome.SUCCEEDED
    # Then two attempts, one ledger row (the billed answer), and the job on the fallback
    with session_scope(runtime.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        attempts = list(session.scalars(select(Attempt).where(Attempt.job_id == job_id)))
        ledger = list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)))
        assert sorted(a.outcome for a in attempts) == ["Overloaded", "ok"]
        assert len(ledger) == 1 and ledger[0].deployment == job.deployment == job.plan[1]
        assert job.attempts == 2 and job.cost_micro_usd == ledger[0].cost_micro_usd


def test_an_interactive_answer_travels_in_its_event_as_its_row_holds_it(
    database_url: str,
) -> None:
    # Given an interactive job whose first deployment answers 503, and a batch job
    runtime = make_runtime(database_url, first_call_busy(), max_tries_per_deployment=1)
    job_id, batch_job_id = queued_job(runtime, "Hello?"), queued_job(runtime, "Hi?")
    # When the interactive one runs alone, and the batch one among others
    with alone():
        assert runtime.execute(job_id) is Outcome.SUCCEEDED
    event = runtime.answer_event(job_id)
    assert runtime.execute(batch_job_id) is Outcome.SUCCEEDED
    # Then the first's event makes the very chat completion its row makes
    assert event is not None
    with session_scope(runtime.engine) as session:
        row = session.get(Job, job_id)
        assert row is not None
    answered = answered_job(event.encode(), row.tenant_id)
    assert answered is not None and answered.attempts is None  # built from the event
    assert chat_completion(answered) == chat_completion(row)
    assert facts_headers(answered) == facts_headers(row)
    assert answered.cost_micro_usd == row.cost_micro_usd > 0
    # And nobody else's request can answer from it; the batch job's event is its status
    assert answered_job(event.encode(), "another-tenant") is None
    assert runtime.answer_event(batch_job_id) is None
    assert answered_job(b"succeeded", row.tenant_id) is None


def test_final_error_fails_the_job_without_billing(database_url: str) -> None:
    # Given a provider that rejects the key
    runtime = make_runtime(
        database_url, lambda r: httpx.Response(401, json={"error": {"message": "bad key"}})
    )
    job_id = queued_job(runtime, "Hello?")
    # When it runs; Then the job fails after one call and nothing is billed
    assert runtime.execute(job_id) is Outcome.FAILED
    with session_scope(runtime.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "failed" and job.cost_micro_usd == 0
        assert job.error and "401" in job.error
        assert session.scalar(select(LedgerEntry).where(LedgerEntry.job_id == job_id)) is None


@pytest.mark.parametrize("broken", ["after committing the answer", "before running anything"])
def test_claim_and_answer_fall_back_to_the_engine_when_prepared_connections_fail(
    database_url: str, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    # Given a worker whose prepared connections break: one commits an answer and loses
    # its reply, or every one fails before running anything
    runtime = make_runtime(database_url, completion)
    if runtime.prepared is None:
        pytest.skip("prepared connections are a Postgres matter")
    real = runtime.prepared.rows

    def failing(sql: str, params: Any) -> list[dict[str, Any]]:
        if broken == "before running anything":
            raise OperationalError(sql, dict(params), Exception("connection refused"))
        rows = real(sql, params)
        if sql.startswith("WITH attempt_rows"):
            raise OperationalError(sql, dict(params), Exception("server closed the connection"))
        return rows

    monkeypatch.setattr(runtime.prepared, "rows", failing)
    job_id = queued_job(runtime, "Say hello.")
    # When the job runs (what failed is retried through the engine)
    assert runtime.execute(job_id) is Outcome.SUCCEEDED
    # Then it is written once (a committed answer recognised): one attempt, one ledger
    # row, one cost
    one_billed_answer(runtime, job_id)


def one_billed_answer(runtime: Runtime, job_id: str) -> None:
    with session_scope(runtime.engine) as session:
        job = session.get(Job, job_id)
        attempts = list(session.scalars(select(Attempt).where(Attempt.job_id == job_id)))
        ledger = list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)))
    assert job is not None and job.status == "succeeded" and job.output == "forty-two"
    assert len(attempts) == 1 and len(ledger) == 1 and job.attempts == 1
    assert job.cost_micro_usd == ledger[0].cost_micro_usd > 0
