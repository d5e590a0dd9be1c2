"""Operator actions on jobs and batches: cancel and re-drive, with their messages.

Cancelling works at any point: a waiting job is simply final (a job waiting for,
or in, a provider batch is withdrawn from it, and a provider batch left with no
line is cancelled at the provider by the reconciler's next pass); a running one
loses its lease, so its worker stops before its next call and cannot write a
result (a call already in flight still finishes, and is billed and recorded).
What the cancelled jobs spent is counted in their tenant's budget at once, and
what they held is given back (a call still in flight keeps its job's hold until
its worker settles it). Re-driving puts failed, expired (and, on request,
cancelled) jobs back in the queue with a fresh deadline and a clean slate of
tries, keeping their attempt history and ledger rows; it reserves for them as
admission does for new jobs, and is refused with the same 402 when the budget
cannot hold them (COSTS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC

import redis
from celery import Celery
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from orchestrator.core.config import Settings
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.schemas import JobStatus
from orchestrator.core.tiers import Tier
from orchestrator.costs.admission_hook import CostHook
from orchestrator.queues.app import QueuedJob, publish
from orchestrator.store import budget_holds, lifecycle, provider_batch_lines, repo
from orchestrator.store.budget_holds import Settlement
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, utcnow

log = logging.getLogger(__name__)
BATCH_REDRIVE = (JobStatus.FAILED.value, JobStatus.EXPIRED.value)


def messages(pending: Iterable[lifecycle.Pending]) -> Iterator[QueuedJob]:
    """The broker messages for jobs the store says need one; not-yet-due ones count down."""
    now = utcnow()
    for p in pending:
        due = p.due_at if p.due_at is None or p.due_at.tzinfo else p.due_at.replace(tzinfo=UTC)
        countdown = max(0.0, (due - now).total_seconds()) if due is not None else 0.0
        yield QueuedJob(p.job_id, Tier(p.tier), p.priority, countdown)


def cancel_job(engine: Engine, costs: CostHook, *, tenant_id: str, job_id: str) -> None:
    """Cancel one job; ``Conflict`` if it is already final. What it spent is settled."""
    with session_scope(engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if JobStatus(job.status).final:
            raise Conflict(f"job {job_id} is already {job.status}")
        _, settled = _cancel(session, costs, tenant_id=tenant_id, job_ids=[job_id])
    _apply(costs, settled)


def cancel_batch(engine: Engine, costs: CostHook, *, tenant_id: str, batch_id: str) -> int:
    """Cancel every job of a batch that is not final yet; returns how many."""
    with session_scope(engine) as session:
        if repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id) is None:
            raise NotFound(f"no batch {batch_id!r}")
        count, settled = _cancel(session, costs, tenant_id=tenant_id, batch_id=batch_id)
    _apply(costs, settled)
    return count


def _apply(costs: CostHook, settled: list[Settlement]) -> None:
    """Apply a cancel's settlements in Redis; the cancel stands if Redis is away (the
    holds then expire, and the spend is reloaded from the rollup)."""
    try:
        costs.budgets.apply(settled)
    except redis.RedisError as exc:
        log.warning("budgets of a cancel not settled: %s", exc)


def _cancel(
    session: Session,
    costs: CostHook,
    *,
    tenant_id: str,
    job_ids: Sequence[str] | None = None,
    batch_id: str | None = None,
) -> tuple[int, list[Settlement]]:
    """Cancel in the session (how many); settle what the jobs spent, release what they held.

    A job whose worker may still have a call in flight (its lease is alive) keeps
    its hold: that worker settles the call's cost and gives the rest back when it
    finds the job cancelled (``workers.budget_settle``).
    """
    scope = lifecycle.scope_with_steps(tenant_id, job_ids, batch_id)
    in_flight = lifecycle.in_flight(session, scope)
    count = lifecycle.cancel_jobs(session, tenant_id=tenant_id, job_ids=job_ids, batch_id=batch_id)
    # out of their provider batches; one left with no line is cancelled at the provider
    provider_batch_lines.withdraw(session, job_ids=select(Job.id).where(scope))
    if not costs.budgets.policy(tenant_id).limited:
        return count, []
    return count, budget_holds.settle(session, scope, keep=in_flight)


def redrive_job(
    engine: Engine,
    celery: Celery,
    settings: Settings,
    costs: CostHook,
    *,
    tenant_id: str,
    job_id: str,
) -> None:
    """Queue a failed, expired or cancelled job again; ``Conflict`` for any other state,
    ``BudgetExceeded`` (402) when its budget cannot hold it, as for a new job."""
    with costs.redriving(tenant_id) as hold, session_scope(engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.status not in lifecycle.REDRIVABLE:
            raise Conflict(
                f"job {job_id} is {job.status}; only failed, expired or cancelled jobs"
                " can be re-driven"
            )
        pending = lifecycle.redrive_jobs(
            session, tenant_id=tenant_id, deadline_s=settings.job_deadline_s, job_ids=[job_id]
        )
        hold(session, [p.job_id for p in pending])  # 402 over the budget: rolled back
    publish(celery, messages(pending))


def redrive_batch(
    engine: Engine,
    celery: Celery,
    settings: Settings,
    costs: CostHook,
    *,
    tenant_id: str,
    batch_id: str,
    include_cancelled: bool = False,
) -> int:
    """Queue a batch's failed and expired (and cancelled, if asked) jobs again; the
    batch's budget holds them all first, or nothing is queued (``BudgetExceeded``)."""
    statuses = (*BATCH_REDRIVE, JobStatus.CANCELLED.value) if include_cancelled else BATCH_REDRIVE
    with costs.redriving(tenant_id) as hold, session_scope(engine) as session:
        if repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id) is None:
            raise NotFound(f"no batch {batch_id!r}")
        pending = lifecycle.redrive_jobs(
            session,
            tenant_id=tenant_id,
            deadline_s=settings.job_deadline_s,
            batch_id=batch_id,
            statuses=statuses,
        )
        hold(session, [p.job_id for p in pending])  # 402 over the budget: rolled back
    publish(celery, messages(pending), chunk=settings.batch_message_jobs)
    return len(pending)
