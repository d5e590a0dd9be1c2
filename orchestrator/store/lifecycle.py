"""Control-plane transitions of jobs: cancel, re-drive, expire, and finding lost work.

    cancel_jobs       any non-final job -> cancelled (a running worker loses its lease)
    redrive_jobs      failed / expired / cancelled -> queued, with a fresh deadline
    expire_overdue    waiting past its deadline (or running past it, lease dead) -> expired
    dead_leases       running jobs whose worker died (the lease expired): to re-publish
    due_unsent        deferred jobs due soon that have no message yet
    lost_waiting      waiting jobs of a tier, due for a while, when its queue is empty
    pending_jobs      everything a worker may still need a message for (Redis lost it all)

The finders mark what they return with ``requeued_at`` so the reconciler does not
publish the same job again on every pass while its new message waits in a queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from orchestrator.core.schemas import FINAL_STATUSES, JobStatus
from orchestrator.store.models import Job, utcnow

FINAL = tuple(s.value for s in FINAL_STATUSES)
WAITING = (JobStatus.QUEUED.value, JobStatus.RETRYING.value)
REDRIVABLE = (JobStatus.FAILED.value, JobStatus.EXPIRED.value, JobStatus.CANCELLED.value)


@dataclass(frozen=True)
class Pending:
    """A job that needs a message: where it goes, how urgently, and when it is due."""

    job_id: str
    tier: str
    priority: int
    due_at: datetime | None = None


def _scope(
    tenant_id: str, job_ids: Sequence[str] | None, batch_id: str | None, table: Any = Job
) -> Any:
    if batch_id is not None:
        return and_(table.tenant_id == tenant_id, table.batch_id == batch_id)
    return and_(table.tenant_id == tenant_id, table.id.in_(list(job_ids or ())))


def scope_with_steps(
    tenant_id: str, job_ids: Sequence[str] | None, batch_id: str | None
) -> ColumnElement[bool]:
    """The jobs in scope and the steps of the pipelines among them."""
    parent = aliased(Job)
    in_scope = select(parent.id).where(_scope(tenant_id, job_ids, batch_id, table=parent))
    return or_(_scope(tenant_id, job_ids, batch_id), Job.parent_job_id.in_(in_scope))


def in_flight(session: Session, condition: ColumnElement[bool]) -> set[str]:
    """Jobs in ``condition`` whose worker holds a live lease (a call may be in flight),
    as the rows that hold their budget: the job, or a step's pipeline parent."""
    live = (Job.status == JobStatus.RUNNING.value) & (Job.lease_expires_at > utcnow())
    rows = session.execute(select(Job.id, Job.parent_job_id).where(condition, live))
    return {parent or job_id for job_id, parent in rows}


def cancel_jobs(
    session: Session,
    *,
    tenant_id: str,
    job_ids: Sequence[str] | None = None,
    batch_id: str | None = None,
) -> int:
    """Cancel every non-final job in scope (and the steps of pipelines in it); returns how many."""
    values = {
        "status": JobStatus.CANCELLED.value,
        "error": "cancelled by request",
        "finished_at": utcnow(),
        "next_attempt_at": None,
        "lease_expires_at": None,
    }
    result = session.execute(
        update(Job)
        .where(_scope(tenant_id, job_ids, batch_id), Job.status.not_in(FINAL))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    # Then a pipeline's steps (PIPELINES.md), not counted. Parents first: a worker that
    # is creating a next step holds its parent's row, so this sees that step.
    parent = aliased(Job)
    in_scope = select(parent.id).where(_scope(tenant_id, job_ids, batch_id, table=parent))
    session.execute(
        update(Job)
        .where(Job.parent_job_id.in_(in_scope), Job.status.not_in(FINAL))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def redrive_jobs(
    session: Session,
    *,
    tenant_id: str,
    deadline_s: float,
    job_ids: Sequence[str] | None = None,
    batch_id: str | None = None,
    statuses: Sequence[str] = REDRIVABLE,
) -> list[Pending]:
    """Queue again every job in scope whose status is in ``statuses``; returns them."""
    now = utcnow()
    rows = session.execute(
        update(Job)
        .where(_scope(tenant_id, job_ids, batch_id), Job.status.in_(list(statuses)))
        .values(
            status=JobStatus.QUEUED.value,
            error=None,
            finished_at=None,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            progress={},
            lease_expiries=0,
            deadline_at=now + timedelta(seconds=deadline_s),
            requeued_at=now,
            redrives=Job.redrives + 1,
        )
        .returning(Job.id, Job.tier, Job.priority)
        .execution_options(synchronize_session=False)
    ).all()
    return [Pending(r[0], r[1], r[2]) for r in rows]


def expire_overdue(session: Session, *, now: datetime, limit: int = 5000) -> int:
    """Expire jobs past their deadline that no live worker holds; returns the count."""
    return len(expire_overdue_jobs(session, now=now, limit=limit))


def expire_overdue_jobs(session: Session, *, now: datetime, limit: int = 5000) -> list[str]:
    """Expire jobs past their deadline that no live worker holds; returns their ids."""
    overdue = (Job.deadline_at.is_not(None)) & (Job.deadline_at < now)
    unheld = or_(
        Job.status.in_(WAITING),
        (Job.status == JobStatus.RUNNING.value) & (Job.lease_expires_at < now),
        # a pipeline's parent runs through its steps and holds no lease (PIPELINES.md)
        (Job.status == JobStatus.RUNNING.value) & Job.lease_expires_at.is_(None),
    )
    ids = list(session.scalars(select(Job.id).where(overdue, unheld).limit(limit)))
    if not ids:
        return []
    result = session.execute(
        update(Job)
        .where(Job.id.in_(ids), overdue, unheld)
        .values(
            status=JobStatus.EXPIRED.value,
            error="deadline passed before the job could finish",
            finished_at=now,
            next_attempt_at=None,
            lease_expires_at=None,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


def _not_recent(now: datetime, requeue_s: float, since: Any = None) -> ColumnElement[bool]:
    """Not re-published since ``since`` (a column), nor within the last ``requeue_s``."""
    since_then = [Job.requeued_at < since] if since is not None else []
    return or_(
        Job.requeued_at.is_(None),
        *since_then,
        Job.requeued_at < now - timedelta(seconds=requeue_s),
    )


def _take(session: Session, condition: Any, now: datetime, limit: int) -> list[Pending]:
    """Up to ``limit`` jobs matching ``condition``, by id, marked as re-published now."""
    columns = (Job.id, Job.tier, Job.priority, Job.next_attempt_at)
    rows = session.execute(select(*columns).where(condition).order_by(Job.id).limit(limit)).all()
    if rows:
        session.execute(
            update(Job)
            .where(Job.id.in_([r[0] for r in rows]))
            .values(requeued_at=now)
            .execution_options(synchronize_session=False)
        )
    return [Pending(r[0], r[1], r[2], r[3]) for r in rows]


def dead_leases(
    session: Session, *, now: datetime, requeue_s: float, limit: int = 5000
) -> list[Pending]:
    """Running jobs whose lease expired: once per expiry, again only after ``requeue_s``."""
    condition = and_(
        Job.status == JobStatus.RUNNING.value,
        Job.lease_expires_at < now,
        _not_recent(now, requeue_s, since=Job.lease_expires_at),
    )
    return _take(session, condition, now, limit)


def due_unsent(
    session: Session, *, now: datetime, lookahead_s: float, limit: int = 5000
) -> list[Pending]:
    """Deferred jobs due within ``lookahead_s`` that have no message yet.

    The reconciler publishes them with a countdown to their due time.
    """
    condition = and_(
        Job.status.in_(WAITING),
        Job.next_attempt_at < now + timedelta(seconds=lookahead_s),
        Job.requeued_at.is_(None),
    )
    return _take(session, condition, now, limit)


def lost_waiting(
    session: Session, *, tier: str, now: datetime, grace_s: float, limit: int = 5000
) -> list[Pending]:
    """Waiting jobs of a tier whose message went out over ``grace_s`` ago, due as long.

    Call it only when the tier's queue is empty: then a job published and due for
    the grace period that no worker claimed has lost its message (a worker that
    prefetched it was killed, a publish failed after the commit).
    """
    cutoff = now - timedelta(seconds=grace_s)
    published = func.coalesce(Job.requeued_at, Job.created_at)
    condition = and_(
        Job.tier == tier,
        Job.status.in_(WAITING),
        published < cutoff,
        or_(Job.next_attempt_at.is_(None), Job.next_attempt_at < cutoff),
        or_(Job.next_attempt_at.is_(None), Job.requeued_at.is_not(None)),
    )
    return _take(session, condition, now, limit)


def pending_jobs(session: Session, *, after_id: str, limit: int = 5000) -> list[Pending]:
    """Every waiting job, or running job with a dead lease, by id after ``after_id``."""
    now = utcnow()
    condition = and_(
        Job.id > after_id,
        or_(
            Job.status.in_(WAITING),
            (Job.status == JobStatus.RUNNING.value) & (Job.lease_expires_at < now),
        ),
    )
    return _take(session, condition, now, limit)
