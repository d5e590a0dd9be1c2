"""Operator actions on jobs and batches: cancel and re-drive, with their messages.

Cancelling works at any point: a waiting job is simply final; a running one
loses its lease, so its worker stops before its next call and cannot write a
result (a call already in flight still finishes, and is billed and recorded).
Re-driving puts failed, expired (and, on request, cancelled) jobs back in the
queue with a fresh deadline and a clean slate of tries, keeping their attempt
history and ledger rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC

from celery import Celery
from sqlalchemy import Engine

from orchestrator.config import Settings
from orchestrator.errors import Conflict, NotFound
from orchestrator.queues import QueuedJob, publish
from orchestrator.schemas import JobStatus
from orchestrator.store import lifecycle, repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import utcnow
from orchestrator.tiers import Tier

BATCH_REDRIVE = (JobStatus.FAILED.value, JobStatus.EXPIRED.value)


def messages(pending: Iterable[lifecycle.Pending]) -> Iterator[QueuedJob]:
    """The broker messages for jobs the store says need one; not-yet-due ones count down."""
    now = utcnow()
    for p in pending:
        due = p.due_at if p.due_at is None or p.due_at.tzinfo else p.due_at.replace(tzinfo=UTC)
        countdown = max(0.0, (due - now).total_seconds()) if due is not None else 0.0
        yield QueuedJob(p.job_id, Tier(p.tier), p.priority, countdown)


def cancel_job(engine: Engine, *, tenant_id: str, job_id: str) -> None:
    """Cancel one job; ``Conflict`` if it is already final."""
    with session_scope(engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if JobStatus(job.status).final:
            raise Conflict(f"job {job_id} is already {job.status}")
        lifecycle.cancel_jobs(session, tenant_id=tenant_id, job_ids=[job_id])


def cancel_batch(engine: Engine, *, tenant_id: str, batch_id: str) -> int:
    """Cancel every job of a batch that is not final yet; returns how many."""
    with session_scope(engine) as session:
        if repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id) is None:
            raise NotFound(f"no batch {batch_id!r}")
        return lifecycle.cancel_jobs(session, tenant_id=tenant_id, batch_id=batch_id)


def redrive_job(
    engine: Engine, celery: Celery, settings: Settings, *, tenant_id: str, job_id: str
) -> None:
    """Queue a failed, expired or cancelled job again; ``Conflict`` for any other state."""
    with session_scope(engine) as session:
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
    publish(celery, messages(pending))


def redrive_batch(
    engine: Engine,
    celery: Celery,
    settings: Settings,
    *,
    tenant_id: str,
    batch_id: str,
    include_cancelled: bool = False,
) -> int:
    """Queue a batch's failed and expired (and cancelled, if asked) jobs again."""
    statuses = (*BATCH_REDRIVE, JobStatus.CANCELLED.value) if include_cancelled else BATCH_REDRIVE
    with session_scope(engine) as session:
        if repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id) is None:
            raise NotFound(f"no batch {batch_id!r}")
        pending = lifecycle.redrive_jobs(
            session,
            tenant_id=tenant_id,
            deadline_s=settings.job_deadline_s,
            batch_id=batch_id,
            statuses=statuses,
        )
    publish(celery, messages(pending), chunk=settings.batch_message_jobs)
    return len(pending)
