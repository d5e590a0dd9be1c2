"""A job's lease: the compare-and-set that makes a job run, and succeed, at most once.

    claim_job      queued/retrying and due, or running with an expired lease -> running
    renew_leases   the heartbeat: push the lease of every job a process still runs
    defer_job      running -> queued/retrying until ``next_attempt_at`` (lease released)
    save_progress  remember which deployments were tried, for the next delivery
    finish_job     running -> final, only for the lease's owner

Every write after the claim is conditioned on ``status = 'running'`` and the
owner, so a worker that lost its lease (it was too slow, the job was cancelled
or expired) can no longer change the job; it can still record the attempts it
made, because those calls happened and may have been billed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.schemas import JobStatus
from orchestrator.store.models import Job, utcnow

RUNNING = JobStatus.RUNNING.value
WAITING = (JobStatus.QUEUED.value, JobStatus.RETRYING.value)
EARLY_S = 1.0
"""A message may arrive this much before ``next_attempt_at`` (clock skew between hosts)."""


@dataclass(frozen=True)
class Claim:
    """What a claim found: the job (now ours), or why not, and when it is due if not yet."""

    job: Job | None
    status: str | None = None
    due_at: datetime | None = None


def claim_job(session: Session, *, job_id: str, owner: str, lease_s: float) -> Claim:
    """Take the job's lease if it is waiting and due, or if its last lease expired."""
    now = utcnow()
    soon = now + timedelta(seconds=EARLY_S)
    due = or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= soon)
    expired = (Job.status == RUNNING) & (Job.lease_expires_at < now)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, or_(Job.status.in_(WAITING) & due, expired))
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=func.coalesce(Job.started_at, now),
            next_attempt_at=None,
            requeued_at=None,
            deliveries=Job.deliveries + 1,
            lease_expiries=Job.lease_expiries + case((Job.status == RUNNING, 1), else_=0),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return Claim(session.get(Job, job_id, populate_existing=True))
    row = session.execute(
        select(Job.status, Job.next_attempt_at).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return Claim(None)
    return Claim(None, status=row[0], due_at=row[1])


def renew_leases(
    session: Session, *, job_ids: Collection[str], owner_prefix: str, lease_s: float
) -> set[str]:
    """Extend the leases this process still holds; returns the ids it still holds."""
    if not job_ids:
        return set()
    held = (
        Job.id.in_(list(job_ids)),
        Job.status == RUNNING,
        Job.lease_owner.startswith(owner_prefix, autoescape=True),
    )
    session.execute(
        update(Job)
        .where(*held)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    return set(session.scalars(select(Job.id).where(*held)))


def _owned(job_id: str, owner: str) -> tuple[Any, ...]:
    return (Job.id == job_id, Job.status == RUNNING, Job.lease_owner == owner)


def defer_job(
    session: Session,
    *,
    job_id: str,
    owner: str,
    status: JobStatus,
    next_attempt_at: datetime,
    progress: dict[str, Any],
    error: str | None = None,
) -> bool:
    """Hand the job back until ``next_attempt_at``; False if this owner lost the lease.

    No message is sent: the reconciler publishes the job shortly before it is due
    (``lifecycle.due_unsent``), so a worker that dies holds no wake-ups.
    """
    result = session.execute(
        update(Job)
        .where(*_owned(job_id, owner))
        .values(
            status=status.value,
            next_attempt_at=next_attempt_at,
            progress=progress,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            requeued_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def save_progress(session: Session, *, job_id: str, owner: str, progress: dict[str, Any]) -> bool:
    """Store the attempt loop's state while still holding the lease."""
    result = session.execute(
        update(Job)
        .where(*_owned(job_id, owner))
        .values(progress=progress)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def finish_job(session: Session, *, job_id: str, owner: str, values: dict[str, Any]) -> bool:
    """Make the job final if this owner still holds its lease; False if it lost it."""
    result = session.execute(
        update(Job)
        .where(*_owned(job_id, owner))
        .values(finished_at=utcnow(), lease_expires_at=None, next_attempt_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
