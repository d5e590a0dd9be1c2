"""Paid calls: every answer a provider gave is written down once, whatever breaks after it.

The attempt loop calls providers through a ``PaidCalls``, which remembers the
answer not yet written (with the attempt id its write will carry). The runtime
writes it as the job's answer (``ok``) or as a rejected answer (``rejected``),
and then it is no longer owed. If anything raises after an answer came (a check
that crashes, a schema that cannot be used, a write the database refuses), the
delivery ends with ``fail_answered``: the owed answer becomes an attempt with its
ledger row (outcome ``processing_error``), and the job fails with the reason.
Without it the exception left the job ``running`` until its lease ran out, and
every redelivery called the provider again and lost that cost too.

    provider answered -> owed -> written (ok / rejected)        nothing more to do
                              -> exception -> fail_answered     attempt + ledger row,
                                                                job failed with the reason

Only a database that stays unreachable (``Runtime._db`` gives up) is left to the
lease: nothing can be written then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest, JobStatus
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.store import leases, repo
from orchestrator.store.models import Attempt, Job, new_id

MAX_REASON_CHARS = 1000
Caller = Callable[[Deployment, JobRequest], Completion]


@dataclass(frozen=True)
class Owed:
    """An answer the provider billed whose attempt is not written yet."""

    deployment: Deployment
    completion: Completion
    latency_ms: int
    attempt_id: str


class PaidCalls:
    """One delivery's provider calls: how many answered, and the answer still owed."""

    def __init__(self, call: Caller) -> None:
        self._call = call
        self.answered = 0
        self.owed: Owed | None = None

    def __call__(self, deployment: Deployment, request: JobRequest) -> Completion:
        started = time.perf_counter()
        completion = self._call(deployment, request)
        latency_ms = int((time.perf_counter() - started) * 1000)
        self.answered += 1
        self.owed = Owed(deployment, completion, latency_ms, new_id("att"))
        return completion

    def attempt_id(self, completion: Completion) -> str:
        """The id the attempt of ``completion`` is written with (its own, if it is owed)."""
        owed = self.owed
        return (
            owed.attempt_id if owed is not None and owed.completion is completion else new_id("att")
        )

    def written(self, completion: Completion) -> None:
        """``completion``'s attempt is in the database: nothing is owed for it any more."""
        if self.owed is not None and self.owed.completion is completion:
            self.owed = None


def answer_record(
    deployment: Deployment,
    completion: Completion,
    *,
    outcome: str,
    latency_ms: int,
    attempt_id: str,
    error: str | None = None,
    cache_hit: bool = False,
) -> repo.AttemptRecord:
    """The attempt of a call that answered, billed at the deployment's prices."""
    usage = completion.usage
    return repo.AttemptRecord(
        deployment=deployment.name,
        provider=deployment.provider,
        model=deployment.model,
        outcome=outcome,
        latency_ms=latency_ms,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        error=error,
        cost_micro_usd=cost_micro_usd(deployment, usage),
        attempt_id=attempt_id,
        cache_hit=cache_hit,
    )


def answer_columns(
    deployment: Deployment, completion: Completion, latency_ms: int
) -> dict[str, Any]:
    """The job's columns for a successful answer."""
    usage = completion.usage
    tool_calls = [t.model_dump(mode="json") for t in completion.tool_calls]
    return {
        "status": JobStatus.SUCCEEDED.value,
        "output": completion.text,
        "tool_calls": tool_calls or None,
        "finish_reason": completion.finish_reason,
        "deployment": deployment.name,
        "provider": deployment.provider,
        "model": deployment.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "latency_ms": latency_ms,
        "error": None,
    }


def failure_reason(exc: BaseException) -> str:
    """What the job's ``error`` says when processing an answer raised ``exc``."""
    detail = f"{type(exc).__name__}: {exc}".replace("\x00", "")
    return f"the provider answered, then processing the answer failed: {detail}"[:MAX_REASON_CHARS]


OnFinal = Callable[[Session, Job, dict[str, Any]], object]


def fail_answered(
    session: Session,
    *,
    job: Job,
    owner: str,
    owed: Owed | None,
    reason: str,
    on_final: OnFinal | None,
) -> bool:
    """Write the owed answer's attempt (once) and fail the job if ``owner`` still holds it.

    Returns whether the job was failed here (False: the lease was lost meanwhile;
    the attempt and its cost are counted all the same).
    """
    cost: int | None = None
    if owed is not None and session.get(Attempt, owed.attempt_id) is None:
        record = answer_record(
            owed.deployment,
            owed.completion,
            outcome="processing_error",
            latency_ms=owed.latency_ms,
            attempt_id=owed.attempt_id,
            error=reason,
        )
        repo.record_attempt(session, job=job, record=record, bill_job=False)
        cost = record.cost_micro_usd or 0
    values = {"status": JobStatus.FAILED.value, "error": reason}
    won = leases.finish_job(
        session, job_id=job.id, owner=owner, values=values, add_cost_micro_usd=cost
    )
    if not won and cost is not None:
        repo.bill_job(session, job_id=job.id, cost_micro_usd=cost)
    if won and on_final is not None:  # a pipeline's step: its parent fails with it
        on_final(session, job, values)
    return won
