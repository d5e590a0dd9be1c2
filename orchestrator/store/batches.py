"""Batch rows beyond what ``repo`` does: the cancel mark and the newest-first listing."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.store.models import Batch, utcnow


def mark_batch_cancelled(session: Session, *, tenant_id: str, batch_id: str) -> None:
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.tenant_id == tenant_id, Batch.cancelled_at.is_(None))
        .values(cancelled_at=utcnow())
    )


def list_batches(
    session: Session, *, tenant_id: str, limit: int, after: str | None = None
) -> list[Batch]:
    """The tenant's batches, newest first, after the batch ``after`` (cursor)."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    if after is not None:
        anchor = session.scalar(
            select(Batch).where(Batch.id == after, Batch.tenant_id == tenant_id)
        )
        if anchor is not None:
            query = query.where(
                (Batch.created_at < anchor.created_at)
                | ((Batch.created_at == anchor.created_at) & (Batch.id > anchor.id))
            )
    return list(session.scalars(query.order_by(Batch.created_at.desc(), Batch.id).limit(limit)))


def clear_cancelled(session: Session, *, tenant_id: str, batch_id: str) -> None:
    """A re-driven batch runs again: it is no longer cancelled."""
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.tenant_id == tenant_id)
        .values(cancelled_at=None, notified_at=None)
    )
