"""A job's line in a provider batch: held at admission, answered or sent back once.

    held_rows(rows)            the admitted job rows whose path is ``provider_batch``
    hold(session, rows)        write their lines (``waiting``), in the admission's transaction
    lines_of(session, id)      a provider batch's lines still to write, with their jobs
    claim_line(session, ...)   take a waiting job's lease for its answer (``None``: it has
                               ended or runs synchronously; the line is then only billed)
    mark(session, ...)         the line's end: answered, billed or released
    release(session, ...)      send jobs back to the synchronous path, due now
    send_back(session, ...)    a provider batch's lines left unanswered: back to wait
                               for the next provider batch (``Retry``), or released
    withdraw(session, ...)     take jobs out of their provider batch (cancelled, or
                               gone to the synchronous path near their deadline)
    stale(session, ...)        lines whose job no longer waits for them

A job held for a provider batch stays ``queued`` with ``next_attempt_at`` at the
moment it must run synchronously (``provider_batch_sync_margin_s`` before its
deadline): no message is published for it, and the reconciler publishes it then
if its provider batch has not answered (``lifecycle.due_unsent``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, insert, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.core.schemas import JobStatus
from orchestrator.store.leases import WAITING, by_id_only
from orchestrator.store.models import Job, as_utc, utcnow
from orchestrator.store.provider_batch_models import ProviderBatchLine


def _path(row: dict[str, Any]) -> str | None:
    steps = [s for s in row.get("routing") or [] if s.get("step") == "path"]
    return str(steps[-1]["choice"]) if steps else None


def held_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The admitted rows that go by provider batch (their ``path`` routing step says so)."""
    return [r for r in rows if _path(r) == "provider_batch" and not r.get("parent_job_id")]


def sync_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows to publish now: all but those held for a provider batch."""
    held = {id(r) for r in held_rows(rows)}
    return [r for r in rows if id(r) not in held]


def hold(session: Session, rows: Sequence[dict[str, Any]], tokens: dict[str, int]) -> None:
    """Write a waiting line for each held row (``tokens``: estimated input, by job id)."""
    held = held_rows(rows)
    if held:
        session.execute(
            insert(ProviderBatchLine),
            [
                {
                    "job_id": r["id"],
                    "deployment": r["plan"][0],
                    "custom_id": r["id"],
                    "state": "waiting",
                    "input_tokens": tokens.get(str(r["id"]), 0),
                    "created_at": r["created_at"],
                    "provider_batch_id": None,
                }
                for r in held
            ],
        )


@dataclass(frozen=True)
class Line:
    """One line still to write: its job's id, custom id, tier and stored request."""

    job_id: str
    custom_id: str
    tier: str
    request: dict[str, Any]


def lines_of(session: Session, *, batch_id: str, state: str = "batched") -> list[Line]:
    """The provider batch's lines in ``state`` (not written yet), in job id order."""
    rows = session.execute(
        select(ProviderBatchLine.job_id, ProviderBatchLine.custom_id, Job.tier, Job.request)
        .join(Job, Job.id == ProviderBatchLine.job_id)
        .where(ProviderBatchLine.provider_batch_id == batch_id, ProviderBatchLine.state == state)
        .order_by(ProviderBatchLine.job_id)
    )
    return [Line(r[0], r[1], r[2], r[3]) for r in rows]


def unbatch(session: Session, *, job_ids: Sequence[str]) -> None:
    """Put lines back to wait for the next provider batch (they did not fit in this file)."""
    session.execute(
        update(ProviderBatchLine)
        .where(ProviderBatchLine.job_id.in_(list(job_ids)), ProviderBatchLine.state == "batched")
        .values(state="waiting", provider_batch_id=None)
        .execution_options(synchronize_session=False)
    )


def line_state(session: Session, *, job_id: str) -> str | None:
    """The line's state, locked for this transaction (so it is written once)."""
    found = select(ProviderBatchLine.state).where(ProviderBatchLine.job_id == job_id)
    return session.execute(found.with_for_update()).scalar_one_or_none()


def claim_line(session: Session, *, job_id: str, owner: str, lease_s: float) -> Job | None:
    """The job, now running under ``owner``, if it was still waiting for its line."""
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, by_id_only(Job.status.in_(WAITING)))
        .values(
            status=JobStatus.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=func.coalesce(Job.started_at, now),
            next_attempt_at=None,
            deliveries=Job.deliveries + 1,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        return None
    return session.get(Job, job_id, populate_existing=True)


def mark(session: Session, *, job_ids: Sequence[str], state: str) -> None:
    """The lines' end: ``answered``, ``billed`` (the job had ended) or ``released``."""
    session.execute(
        update(ProviderBatchLine)
        .where(ProviderBatchLine.job_id.in_(list(job_ids)))
        .values(state=state)
        .execution_options(synchronize_session=False)
    )


def release(
    session: Session, *, job_ids: Sequence[str], now: datetime
) -> list[tuple[str, str, int]]:
    """Send still-waiting jobs to the synchronous path, due now (the reconciler publishes
    them: ``lifecycle.due_unsent``); (id, tier, priority) of each."""
    mark(session, job_ids=job_ids, state="released")
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.status.in_(WAITING))
        .values(next_attempt_at=now, requeued_at=None)  # the reconciler publishes it now
        .returning(Job.id, Job.tier, Job.priority)
        .execution_options(synchronize_session=False)
    )
    return [(r[0], r[1], r[2]) for r in rows]


@dataclass(frozen=True)
class Retry:
    """When an unanswered line waits for another provider batch instead of going
    synchronous: sent fewer than ``max_tries`` times, its failure not ``final``
    (custom ids whose failure will not go away), its job still waiting and its time
    to run synchronously (``next_attempt_at``) later than ``before``."""

    max_tries: int
    before: datetime
    final: frozenset[str] = frozenset()


def send_back(
    session: Session, *, batch_id: str, now: datetime, retry: Retry | None
) -> tuple[list[str], list[str]]:
    """The batch's lines still ``batched`` (no answer): each counts one more try, then
    waits for the next provider batch (``Retry``) or is released; (waiting, released)."""
    rows = session.execute(
        select(
            ProviderBatchLine.job_id,
            ProviderBatchLine.custom_id,
            ProviderBatchLine.tries,
            Job.status,
            Job.next_attempt_at,
        )
        .join(Job, Job.id == ProviderBatchLine.job_id)
        .where(
            ProviderBatchLine.provider_batch_id == batch_id, ProviderBatchLine.state == "batched"
        )
        .order_by(ProviderBatchLine.job_id)
        .with_for_update(of=ProviderBatchLine)
    ).all()
    if not rows:
        return [], []
    again = [r[0] for r in rows if retry is not None and _again(retry, r[1], r[2], r[3], r[4])]
    session.execute(
        update(ProviderBatchLine)
        .where(ProviderBatchLine.job_id.in_([r[0] for r in rows]))
        .values(tries=ProviderBatchLine.tries + 1)
        .execution_options(synchronize_session=False)
    )
    if again:
        session.execute(
            update(ProviderBatchLine)
            .where(ProviderBatchLine.job_id.in_(again))
            .values(state="waiting", provider_batch_id=None)
            .execution_options(synchronize_session=False)
        )
    waits = set(again)
    rest = [r[0] for r in rows if r[0] not in waits]
    released = [r[0] for r in release(session, job_ids=rest, now=now)] if rest else []
    return again, released


def _again(retry: Retry, custom_id: str, tries: int, status: str, sync_at: datetime | None) -> bool:
    if tries + 1 >= retry.max_tries or custom_id in retry.final or status not in WAITING:
        return False
    return sync_at is not None and as_utc(sync_at) > retry.before


OPEN = ("waiting", "batched")


def withdraw(session: Session, *, job_ids: Sequence[str] | Select[Any]) -> set[str]:
    """Take the jobs' lines out of their provider batches (``withdrawn``): not gathered,
    not sent, and an answer the provider still gives for one is never the job's
    (``workers.batch_collect``). ``job_ids``: ids, or a query of them. Returns the
    provider batches the lines were in."""
    if isinstance(job_ids, Sequence) and not job_ids:
        return set()
    ids = job_ids if isinstance(job_ids, Select) else list(job_ids)
    rows = session.execute(
        update(ProviderBatchLine)
        .where(ProviderBatchLine.job_id.in_(ids), ProviderBatchLine.state.in_(OPEN))
        .values(state="withdrawn")
        .returning(ProviderBatchLine.provider_batch_id)
        .execution_options(synchronize_session=False)
    )
    return {r[0] for r in rows if r[0] is not None}


def stale(session: Session, *, now: datetime, limit: int = 5000) -> list[str]:
    """Jobs whose line still waits or is batched though the job no longer waits for it:
    it ended (cancelled, expired), runs, or its time to run synchronously has come
    (``next_attempt_at``: ``provider_batch_sync_margin_s`` before its deadline).
    The lines are locked (``SKIP LOCKED``): one a collect is writing is left to it."""
    found = (
        select(ProviderBatchLine.job_id)
        .join(Job, Job.id == ProviderBatchLine.job_id)
        .where(
            ProviderBatchLine.state.in_(OPEN),
            or_(
                Job.status.not_in(WAITING),
                Job.next_attempt_at.is_(None),
                Job.next_attempt_at <= now,
            ),
        )
        .limit(limit)
        .with_for_update(of=ProviderBatchLine, skip_locked=True)
    )
    return list(session.scalars(found))


def batched_left(session: Session, *, batch_id: str) -> int:
    """How many of the provider batch's lines are still ``batched`` (want an answer)."""
    found = select(func.count()).where(
        ProviderBatchLine.provider_batch_id == batch_id, ProviderBatchLine.state == "batched"
    )
    return int(session.scalar(found) or 0)
