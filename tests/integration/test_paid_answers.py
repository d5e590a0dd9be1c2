"""A paid call is never lost from the ledger: whatever raises after the provider answered.

The attempt loop against the real database, the provider faked at its HTTP edge
(counting calls): a check that crashes, or a result the database refuses, ends
the job ``failed`` with its one billed attempt, and a redelivery calls nobody.
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError

from orchestrator.core.schemas import Completion, JobRequest
from orchestrator.pipelines.planner import (
    insert_rows,
    routing_columns,
    split_pipelines,
    step_request,
)
from orchestrator.routing import route
from orchestrator.store import answered, repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry, new_id, utcnow
from tests.integration.test_execute import completion, make_runtime, queued_job
from workers.checks import DEFAULT_CHECKS, OutputGate, Problem
from workers.execute import Outcome, Runtime

pytestmark = pytest.mark.integration


class Counting:
    """A provider at the HTTP edge that answers ``text`` and counts its calls."""

    def __init__(self, text: str = "forty-two") -> None:
        self.text = text
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        answer = completion(request)
        body = json.loads(answer.content)
        body["choices"][0]["message"]["content"] = self.text
        content = json.dumps(body).encode()  # ASCII escapes: half a surrogate pair too
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})


class CrashingCheck:
    """An output check with a bug: it raises on every answer."""

    name = "crashing"

    def applies(self, request: JobRequest) -> bool:
        return True

    def problem(self, request: JobRequest, completion: Completion) -> Problem | None:
        raise KeyError("a bug in a check")


def ended(runtime: Runtime, job_id: str) -> tuple[Job, list[Attempt], list[LedgerEntry]]:
    with session_scope(runtime.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        attempts = list(session.scalars(select(Attempt).where(Attempt.job_id == job_id)))
        ledger = list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)))
        session.expunge_all()
        return job, attempts, ledger


def assert_billed_once(runtime: Runtime, job_id: str, provider: Counting, why: str) -> None:
    """Failed with the reason, one attempt, one ledger row at the priced cost, one call."""
    job, attempts, ledger = ended(runtime, job_id)
    assert job.status == "failed" and job.error is not None and why in job.error, job.error
    assert [a.outcome for a in attempts] == ["processing_error"]
    deployment = runtime.catalog.get(attempts[0].deployment)
    priced = 1000 * deployment.input_usd_per_mtok + 500 * deployment.output_usd_per_mtok
    assert len(ledger) == 1 and ledger[0].cost_micro_usd == int(priced) > 0
    assert ledger[0].attempt_id == attempts[0].id
    assert job.attempts == 1 and job.cost_micro_usd == ledger[0].cost_micro_usd
    assert provider.calls == 1


def test_a_crashing_check_fails_the_job_with_its_paid_call_billed_once(
    database_url: str,
) -> None:
    # Given a worker whose output checks include one that raises
    provider = Counting()
    runtime = make_runtime(database_url, provider)
    runtime.gate = OutputGate(checks=(*DEFAULT_CHECKS, CrashingCheck()))
    job_id = queued_job(runtime, "What is six times seven?")
    # When the job runs, and its message is delivered again
    outcome = runtime.execute(job_id)
    again = runtime.execute(job_id)
    # Then it failed, naming the error; the paid call is one attempt and one ledger row
    assert outcome is Outcome.FAILED and again is Outcome.SKIPPED
    assert_billed_once(runtime, job_id, provider, "KeyError")


def test_an_answer_the_database_refuses_fails_the_job_with_its_call_billed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database that refuses the answer's write (as Postgres refuses a value it
    # cannot store)
    def refused(*_args: object, **_kwargs: object) -> object:
        raise DataError("INSERT ...", {}, ValueError("a value the column cannot hold"))

    monkeypatch.setattr(answered, "write_answers", refused)
    monkeypatch.setattr(answered, "write_answers_by", refused)  # on prepared connections
    provider = Counting()
    runtime = make_runtime(database_url, provider)
    job_id = queued_job(runtime, "What is six times seven?")
    # When the job runs, and its message is delivered again
    outcome = runtime.execute(job_id)
    again = runtime.execute(job_id)
    # Then writing the result failed, and the job failed with the call billed once
    assert outcome is Outcome.FAILED and again is Outcome.SKIPPED
    assert_billed_once(runtime, job_id, provider, "processing the answer failed")


@pytest.mark.parametrize("text", ["forty\x00two", "forty\ud83dtwo"])
def test_an_answer_with_a_nul_or_half_a_surrogate_pair_is_stored_and_delivered(
    database_url: str, text: str
) -> None:
    # Given a provider whose answer carries a character no Postgres text column takes
    provider = Counting(text=text)
    runtime = make_runtime(database_url, provider)
    job_id = queued_job(runtime, "What is six times seven?")
    # When the job runs
    assert runtime.execute(job_id) is Outcome.SUCCEEDED
    # Then the answer is stored with U+FFFD in its place, billed once, from one call
    job, attempts, ledger = ended(runtime, job_id)
    assert job.status == "succeeded" and job.output == "forty\ufffdtwo"
    assert [a.outcome for a in attempts] == ["ok"] and len(ledger) == 1
    assert job.cost_micro_usd == ledger[0].cost_micro_usd > 0 and provider.calls == 1


def test_a_pipeline_step_that_crashes_fails_its_parent_too(database_url: str) -> None:
    # Given a pipeline's first step, whose worker has a crashing check
    provider = Counting()
    runtime = make_runtime(database_url, provider)
    runtime.gate = OutputGate(checks=(CrashingCheck(),))
    parent_id, step_id = queued_pipeline(runtime)
    # When the step runs
    assert runtime.execute(step_id) is Outcome.FAILED
    # Then the step is billed once and failed, and its parent failed with it, at its cost
    assert_billed_once(runtime, step_id, provider, "KeyError")
    parent, _, _ = ended(runtime, parent_id)
    step, _, ledger = ended(runtime, step_id)
    assert parent.status == "failed" and parent.error and "step 0" in parent.error
    assert parent.cost_micro_usd == step.cost_micro_usd == ledger[0].cost_micro_usd


def queued_pipeline(runtime: Runtime) -> tuple[str, str]:
    """A two-step pipeline stored as the dispatcher stores one: (parent id, step 0 id)."""
    request = JobRequest.model_validate(
        {
            "prompt": "An invoice for ACME, 12 EUR, paid.",
            "steps": [
                {"prompt": "Summarise: {input}"},
                {"prompt": "Shorter: {steps.step0.output}"},
            ],
        }
    )
    decision = route(step_request(request, 0, {}), runtime.catalog)
    with session_scope(runtime.engine) as session:
        tenant = repo.create_tenant(session, name=f"paid-{secrets.token_hex(4)}")
        row = {
            "id": new_id("job"),
            "tenant_id": tenant.id,
            "status": "queued",
            **routing_columns(decision),
            "priority": 0,
            "request": request.model_dump(mode="json", exclude_none=True),
            "created_at": utcnow(),
            "deadline_at": None,
        }
        rows = split_pipelines([row])
        insert_rows(session, rows)
    (step,) = [r for r in rows if r.get("parent_job_id")]
    return row["id"], step["id"]
