"""The webhook outbox: finished jobs and batches that owe a notification, and its deliveries.

Claiming is a compare-and-set on ``notified_at`` (jobs, batches) or on
``next_attempt_at`` (deliveries), so several notifiers never send one twice at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.core.schemas import FINAL_STATUSES
from orchestrator.store.models import Batch, Job, WebhookDelivery, utcnow

FINAL = tuple(s.value for s in FINAL_STATUSES)


def finished_jobs_to_notify(session: Session, *, limit: int) -> list[Job]:
    """Final jobs with a callback URL and no notification yet; each is claimed as returned."""
    candidates = session.scalars(
        select(Job)
        .where(Job.callback_url.is_not(None), Job.notified_at.is_(None), Job.status.in_(FINAL))
        .limit(limit)
    ).all()
    return [job for job in candidates if _claim(session, Job, job.id)]


def batches_to_notify(session: Session, *, limit: int) -> list[Batch]:
    """Batches with a callback URL and no notification yet (finished or not)."""
    return list(
        session.scalars(
            select(Batch)
            .where(Batch.callback_url.is_not(None), Batch.notified_at.is_(None))
            .order_by(Batch.created_at)
            .limit(limit)
        )
    )


def claim_batch(session: Session, *, batch_id: str) -> bool:
    return _claim(session, Batch, batch_id)


def _claim(session: Session, table: type[Job] | type[Batch], row_id: str) -> bool:
    result = session.execute(
        update(table)
        .where(table.id == row_id, table.notified_at.is_(None))
        .values(notified_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_delivery(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    object_id: str,
    url: str,
    payload: dict[str, Any],
) -> None:
    session.add(
        WebhookDelivery(
            tenant_id=tenant_id, kind=kind, object_id=object_id, url=url, payload=payload
        )
    )


def claim_due(session: Session, *, limit: int, lease_s: float) -> list[WebhookDelivery]:
    """Pending deliveries that are due, each pushed ``lease_s`` ahead while it is sent."""
    now = utcnow()
    rows = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    claimed = []
    for row in rows:
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == row.id,
                WebhookDelivery.next_attempt_at == row.next_attempt_at,
            )
            .values(next_attempt_at=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            claimed.append(row)
    return claimed


def record_try(
    session: Session, *, delivery_id: str, error: str | None, retry_at: datetime | None
) -> None:
    """One send's outcome: delivered, failed for good (no ``retry_at``), or retry then."""
    values: dict[str, Any] = {"attempts": WebhookDelivery.attempts + 1, "last_error": error}
    if error is None:
        values.update(status="delivered", delivered_at=utcnow())
    elif retry_at is None:
        values.update(status="failed")
    else:
        values.update(next_attempt_at=retry_at)
    session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
    )


def deliveries_for(session: Session, *, tenant_id: str, object_id: str) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.object_id == object_id
            )
        )
    )
