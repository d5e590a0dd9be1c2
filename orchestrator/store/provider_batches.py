"""Provider batches in the store: gather waiting jobs into one, hold it, move its state.

    gather(session, deployment, ...)   the waiting lines of a deployment -> a new
                                       provider batch (``prepared``), when a file is
                                       full or its oldest line waited ``gather_s``
    take(session, id, now, hold_s)     hold a batch for one task (compare-and-set);
                                       a dead task's hold lapses at ``locked_until``
    advance(session, id, values, held_until)  its next state (only while still held)
    begin_alone(session, id, provider, ...)   ``submitting``, only while no other batch
                                       of the provider is (creates that carry no tag)
    due(session, now)                  batches not done whose next step is due
    queued_tokens(session)             input tokens queued at the provider, by deployment
    to_cancel(session, now)            submitted batches no line wants an answer from
                                       any more, waiting for a later poll

The lifecycle's states are listed in ``orchestrator.store.provider_batch_models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from orchestrator.store.models import as_utc, new_id
from orchestrator.store.provider_batch_models import ProviderBatch, ProviderBatchLine

ENDED = ("done",)


def waiting_deployments(session: Session) -> list[str]:
    """Deployments that have lines waiting to be gathered."""
    found = select(ProviderBatchLine.deployment).where(ProviderBatchLine.state == "waiting")
    return sorted(set(session.scalars(found.distinct())))


def waiting_lines(session: Session, *, limit: int) -> list[str]:
    """Job ids of lines waiting to be gathered, oldest first (locked, ``SKIP LOCKED``)."""
    found = (
        select(ProviderBatchLine.job_id)
        .where(ProviderBatchLine.state == "waiting")
        .order_by(ProviderBatchLine.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(found))


def gather(
    session: Session,
    *,
    deployment: str,
    provider: str,
    now: datetime,
    gather_s: float,
    max_lines: int,
    room_tokens: int | None = None,
) -> ProviderBatch | None:
    """A new provider batch of the deployment's waiting lines, oldest first, if it is time.

    It is time when ``max_lines`` wait, or the oldest has waited ``gather_s``.
    ``room_tokens``: the input tokens the provider may still queue for the model;
    the batch takes the oldest lines that fit (the rest wait; a line that would
    not fit is not skipped for younger ones). The lines are locked (``SKIP
    LOCKED``): two gatherers never take the same line.
    """
    rows = session.execute(
        select(
            ProviderBatchLine.job_id, ProviderBatchLine.created_at, ProviderBatchLine.input_tokens
        )
        .where(ProviderBatchLine.deployment == deployment, ProviderBatchLine.state == "waiting")
        .order_by(ProviderBatchLine.created_at, ProviderBatchLine.job_id)
        .limit(max_lines)
        .with_for_update(skip_locked=True)
    ).all()
    if room_tokens is not None:
        rows = _fitting(rows, room_tokens)
    if not rows:
        return None
    oldest = as_utc(rows[0][1])
    if len(rows) < max_lines and oldest > now - timedelta(seconds=gather_s):
        return None
    batch = ProviderBatch(
        id=new_id("pbat"),
        deployment=deployment,
        provider=provider,
        state="prepared",
        lines=len(rows),
        input_tokens=sum(r[2] for r in rows),
        succeeded=0,
        failed=0,
        attempts=0,
        created_at=now,
        next_poll_at=now,
    )
    session.add(batch)
    session.flush()
    session.execute(
        update(ProviderBatchLine)
        .where(ProviderBatchLine.job_id.in_([r[0] for r in rows]))
        .values(state="batched", provider_batch_id=batch.id)
        .execution_options(synchronize_session=False)
    )
    return batch


def take(session: Session, *, batch_id: str, now: datetime, hold_s: float) -> ProviderBatch | None:
    """Hold the batch until ``now + hold_s`` if no live task holds it and it is not done."""
    held = session.execute(
        update(ProviderBatch)
        .where(
            ProviderBatch.id == batch_id,
            ProviderBatch.state.not_in(ENDED),
            or_(ProviderBatch.locked_until.is_(None), ProviderBatch.locked_until < now),
        )
        .values(locked_until=now + timedelta(seconds=hold_s), attempts=ProviderBatch.attempts + 1)
        .returning(ProviderBatch.id)
    ).scalar_one_or_none()
    if held is None:
        return None
    return session.get(ProviderBatch, batch_id, populate_existing=True)


def advance(
    session: Session,
    *,
    batch_id: str,
    values: dict[str, Any],
    held_until: datetime | None = None,
) -> bool:
    """Write the batch's next state (its holder calls this before each external step).

    ``held_until``: only if the hold is still the one ``take`` gave (its
    ``locked_until``), so a task whose hold lapsed and was taken over writes nothing.
    """
    statement = update(ProviderBatch).where(ProviderBatch.id == batch_id)
    if held_until is not None:
        statement = statement.where(ProviderBatch.locked_until == held_until)
    done = session.execute(
        statement.values(**values)
        .returning(ProviderBatch.id)
        .execution_options(synchronize_session=False)
    ).first()
    return done is not None


SUBMITTING = "submitting"


def begin_alone(
    session: Session,
    *,
    batch_id: str,
    provider: str,
    values: dict[str, Any],
    held_until: datetime | None,
) -> bool | None:
    """Write ``values`` (state ``submitting``) only if no other batch of ``provider`` is
    ``submitting``: True written, False another is, None the hold was lost.

    A provider whose batches carry no tag of ours (Anthropic) can only tell a lost
    create's batch by its size and time; two creates under way at once could each
    take the other's batch for their own. One at a time per provider, an untaken
    batch made since ours was gathered can only be ours. On Postgres an advisory
    lock on the provider orders the check and the write across transactions (the
    next one reads the committed state); SQLite runs one writer at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"provider_batch_submit:{provider}"},
        )
    busy = session.scalar(
        select(
            exists().where(
                ProviderBatch.provider == provider,
                ProviderBatch.state == SUBMITTING,
                ProviderBatch.id != batch_id,
            )
        )
    )
    if busy:
        return False
    return advance(session, batch_id=batch_id, values=values, held_until=held_until) or None


def release_hold(
    session: Session,
    *,
    batch_id: str,
    next_poll_at: datetime | None,
    held_until: datetime | None = None,
) -> bool:
    """Let go of the batch; its next step is due at ``next_poll_at``."""
    values = {"locked_until": None, "next_poll_at": next_poll_at}
    return advance(session, batch_id=batch_id, values=values, held_until=held_until)


def due(session: Session, *, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
    """(id, deployment) of batches not done, not held, whose next step is due."""
    found = (
        select(ProviderBatch.id, ProviderBatch.deployment)
        .where(
            ProviderBatch.state.not_in(ENDED),
            ProviderBatch.next_poll_at <= now,
            or_(ProviderBatch.locked_until.is_(None), ProviderBatch.locked_until < now),
        )
        .order_by(ProviderBatch.next_poll_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in session.execute(found)]


NOT_CANCELLED = ("cancelling", "cancelled", "completed", "failed", "expired")


def to_cancel(session: Session, *, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
    """(id, deployment) of submitted batches with no line left ``batched`` (each was
    withdrawn), not yet cancelled at the provider, not held, whose next poll is
    later than now: the advance task is to be sent now to cancel them."""
    wanted = select(ProviderBatchLine.job_id).where(
        ProviderBatchLine.provider_batch_id == ProviderBatch.id,
        ProviderBatchLine.state == "batched",
    )
    found = (
        select(ProviderBatch.id, ProviderBatch.deployment)
        .where(
            ProviderBatch.state == "submitted",
            or_(
                ProviderBatch.provider_status.is_(None),
                ProviderBatch.provider_status.not_in(NOT_CANCELLED),
            ),
            ProviderBatch.next_poll_at > now,
            or_(ProviderBatch.locked_until.is_(None), ProviderBatch.locked_until < now),
            ~exists(wanted),
        )
        .limit(limit)
    )
    return [(r[0], r[1]) for r in session.execute(found)]


def anything_to_do(session: Session) -> bool:
    """Whether any line waits to be gathered or any batch is not done (one cheap query)."""
    waiting = select(ProviderBatchLine.job_id).where(ProviderBatchLine.state == "waiting")
    open_ = select(ProviderBatch.id).where(ProviderBatch.state.not_in(ENDED))
    return bool(session.scalar(select(exists(waiting) | exists(open_))))


# the provider holds these batches' lines (or may): their tokens count as queued there
QUEUED = ("prepared", "uploading", "uploaded", "submitting", "submitted")


def queued_tokens(session: Session) -> dict[str, int]:
    """Input tokens queued at the provider, by deployment: those of provider batches
    not ended there yet (a batch being collected has ended at the provider)."""
    found = (
        select(ProviderBatch.deployment, func.sum(ProviderBatch.input_tokens))
        .where(ProviderBatch.state.in_(QUEUED))
        .group_by(ProviderBatch.deployment)
    )
    return {r[0]: int(r[1] or 0) for r in session.execute(found)}


def _fitting(rows: Sequence[Any], room_tokens: int) -> list[Any]:
    """The oldest rows whose input tokens (the rows' third column) fit in ``room_tokens``."""
    used = 0
    for count, row in enumerate(rows):
        used += int(row[2])
        if used > room_tokens:
            return list(rows[:count])
    return list(rows)


def recorded_since(session: Session, *, since: datetime) -> set[str]:
    """Provider batch ids our batches made since ``since`` record (a lost create's
    candidates at a provider whose batches carry no tag exclude these)."""
    found = select(ProviderBatch.provider_batch_id).where(
        ProviderBatch.provider_batch_id.is_not(None), ProviderBatch.created_at >= since
    )
    return {str(r) for r in session.scalars(found)}
