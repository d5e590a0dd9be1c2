"""Small keyword-only functions over the tables; every tenant-owned read takes ``tenant_id``.

The job lease lives in ``leases`` (worker side) and cancel, re-drive and the
reconciler's sweeps in ``lifecycle`` (control plane). Attempt and ledger rows
are written whether or not the lease still holds, because the provider call
happened and was billed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from orchestrator.store.bulk import Inserts, insert_many, streaming_inserts
from orchestrator.store.models import ApiKey, Attempt, Batch, Job, LedgerEntry, Tenant, new_id

API_KEY_PREFIX = "sy-"


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_tenant(session: Session, *, name: str) -> Tenant:
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant_by_name(session: Session, *, name: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.name == name))


def create_api_key(session: Session, *, tenant_id: str, api_key: str | None = None) -> str:
    """Store a new key's hash and return the plaintext key (shown once)."""
    key = api_key or API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(key), prefix=key[:8]))
    session.flush()
    return key


def tenant_for_api_key(session: Session, *, api_key: str) -> str | None:
    return session.scalar(
        select(ApiKey.tenant_id).where(
            ApiKey.key_hash == hash_api_key(api_key), ApiKey.revoked_at.is_(None)
        )
    )


def create_batch(session: Session, *, tenant_id: str, total: int) -> Batch:
    batch = Batch(tenant_id=tenant_id, total=total)
    session.add(batch)
    session.flush()
    return batch


def insert_jobs(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk insert of fully formed job rows (as JSON expanded by Postgres: ``store.bulk``)."""
    if rows:
        insert_many(session.connection(), cast(Table, Job.__table__), rows)


@contextmanager
def job_inserts(session: Session) -> Iterator[Inserts]:
    """``insert(rows)`` for job rows made a part at a time, each part inserted while the
    next is made (``bulk.streaming_inserts``), in the session's transaction."""
    with streaming_inserts(session.connection(), cast(Table, Job.__table__)) as insert:
        yield lambda rows: insert(rows) if rows else None


def get_job(session: Session, *, tenant_id: str, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


def get_batch(session: Session, *, tenant_id: str, batch_id: str) -> Batch | None:
    return session.scalar(select(Batch).where(Batch.id == batch_id, Batch.tenant_id == tenant_id))


@dataclass(frozen=True)
class BatchTotals:
    """Counts by status, spend and last finish time of one batch's jobs."""

    by_status: dict[str, int]
    cost_micro_usd: int
    last_finished_at: datetime | None


def batch_totals(session: Session, *, tenant_id: str, batch_id: str) -> BatchTotals:
    rows = session.execute(
        select(Job.status, func.count(), func.sum(Job.cost_micro_usd), func.max(Job.finished_at))
        .where(Job.batch_id == batch_id, Job.tenant_id == tenant_id)
        .group_by(Job.status)
    ).all()
    finished = [r[3] for r in rows if r[3] is not None]
    return BatchTotals(
        by_status={r[0]: int(r[1]) for r in rows},
        cost_micro_usd=sum(int(r[2] or 0) for r in rows),
        last_finished_at=max(finished) if finished else None,
    )


def iter_batch_jobs(
    session: Session, *, tenant_id: str, batch_id: str, chunk: int = 1000
) -> Iterator[Job]:
    """The batch's jobs in submission order, read in chunks (keyset pagination)."""
    last = -1
    while True:
        jobs = session.scalars(
            select(Job)
            .where(Job.batch_id == batch_id, Job.tenant_id == tenant_id, Job.batch_index > last)
            .order_by(Job.batch_index)
            .limit(chunk)
        ).all()
        if not jobs:
            return
        yield from jobs
        last = jobs[-1].batch_index or 0


@dataclass(frozen=True)
class AttemptRecord:
    """What one provider call did; ``cost_micro_usd`` is set only if it was billed."""

    deployment: str
    provider: str
    model: str
    outcome: str
    latency_ms: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    http_status: int | None = None
    error: str | None = None
    cost_micro_usd: int | None = None
    attempt_id: str | None = None  # chosen by the caller, so a retried write can detect itself
    cache_hit: bool = False  # answered from the response cache: no provider call, cost 0
    path: str = "sync"  # or provider_batch: a line of a provider batch (issue 26)


_ATTEMPTS: Any = Attempt.__table__
_LEDGER: Any = LedgerEntry.__table__
_JOBS: Any = Job.__table__
_INSERT_ATTEMPT = insert(_ATTEMPTS)
_INSERT_LEDGER = insert(_LEDGER)
_BILL_JOB = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("b_job_id"))
    .values(
        attempts=_JOBS.c.attempts + 1,
        cost_micro_usd=_JOBS.c.cost_micro_usd + bindparam("b_cost", type_=BigInteger()),
    )
)


def record_attempt(
    session: Session, *, job: Job, record: AttemptRecord, bill_job: bool = True
) -> str:
    """Write the attempt, and for a billed call its one ledger row and the job's running cost.

    Prebuilt Core statements, bound per call (three round trips, no ORM flush, no
    statement building): this runs once per provider call on the workers' hot
    path. ``bill_job=False`` leaves the job's attempt count and cost to the
    caller, who adds them in the statement that finishes the job
    (``leases.finish_job``). Returns the attempt's id.
    """
    attempt, entry = attempt_rows(job, record)
    connection = session.connection()
    connection.execute(_INSERT_ATTEMPT, attempt)
    if entry is not None:
        connection.execute(_INSERT_LEDGER, entry)
    cost = record.cost_micro_usd
    if bill_job:
        connection.execute(_BILL_JOB, {"b_job_id": job.id, "b_cost": cost or 0})
    return str(attempt["id"])


def attempt_rows(job: Job, record: AttemptRecord) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The attempt's row, and its ledger row if the call was billed (keyed by column)."""
    shared = {
        "tenant_id": job.tenant_id,
        "job_id": job.id,
        "deployment": record.deployment,
        "provider": record.provider,
        "model": record.model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cached_input_tokens": record.cached_input_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cache_hit": record.cache_hit,
    }
    attempt_id = record.attempt_id or new_id("att")
    attempt = {
        **shared,
        "id": attempt_id,
        "outcome": record.outcome,
        "http_status": record.http_status,
        "error": record.error,
        "latency_ms": record.latency_ms,
    }
    if record.cost_micro_usd is None:
        return attempt, None
    billed = {
        "attempt_id": attempt_id,
        "batch_id": job.batch_id,
        "tier": job.tier,
        "path": record.path,
    }
    return attempt, {**shared, **billed, "cost_micro_usd": record.cost_micro_usd}


def bill_job(session: Session, *, job_id: str, cost_micro_usd: int) -> None:
    """Count one more attempt on the job and add its cost."""
    session.connection().execute(_BILL_JOB, {"b_job_id": job_id, "b_cost": cost_micro_usd})


def ledger_for_job(session: Session, *, tenant_id: str, job_id: str) -> list[LedgerEntry]:
    return list(
        session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.job_id == job_id, LedgerEntry.tenant_id == tenant_id
            )
        )
    )
