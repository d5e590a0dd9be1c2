"""A job's lease: the compare-and-set that makes a job run, and succeed, at most once.

    claim_job      queued/retrying and due, or running with an expired lease -> running
    claim_jobs     the same for many jobs in one statement (Postgres; one owner each)
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
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Text,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from orchestrator.core.schemas import JobStatus
from orchestrator.store.db import Rows, driver_rows, driver_sql
from orchestrator.store.models import Job, detached_job, utcnow

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


def by_id_only(condition: Any) -> Any:
    """``condition`` kept as a filter on rows found by id: ``(condition) IS TRUE``.

    The planner cannot use an index for it, so a statement naming its jobs by id
    reaches them through the primary key. Left bare, a condition on ``status`` let
    the planner choose a status index whenever its statistics lagged a burst (a
    table that had just taken 20,000 queued jobs still looked as if it held one):
    each claim then read every queued job instead of the few it wanted.
    """
    return condition.is_(True)


def _claim_statement(*, many: bool) -> Any:
    """The claim as one prebuilt Core UPDATE ... RETURNING (bound per call, compiled once).

    One job: ``c_id`` and ``c_owner``. ``many``: ids and owners arrive as two
    arrays (``c_ids``, ``c_owners``), unnested side by side and joined by id, and the
    ids are also given as ``id = ANY(...)``: joined to the unnested arrays alone, the
    planner read the whole table whenever its statistics thought it small (a fresh
    table taking its first thousand jobs), on every claim.
    """
    jobs: Any = Job.__table__
    c = jobs.c
    now: Any = bindparam("c_now")
    if many:
        ids = bindparam("c_ids", type_=ARRAY(Text))
        wanted: Any = (
            func.unnest(ids, bindparam("c_owners", type_=ARRAY(Text)))
            .table_valued("id", "owner")
            .render_derived(with_types=False)
            .alias("wanted")
        )
        which, owner = (c.id == wanted.c.id) & (c.id == any_(ids)), wanted.c.owner
    else:
        which, owner = c.id == bindparam("c_id"), bindparam("c_owner")
    due = or_(c.next_attempt_at.is_(None), c.next_attempt_at <= bindparam("c_soon"))
    expired = (c.status == RUNNING) & (c.lease_expires_at < now)
    waiting = c.status.in_([literal(status) for status in WAITING])  # fixed: no expanding IN
    return (
        update(jobs)
        .where(which, by_id_only(or_(waiting & due, expired)))
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=bindparam("c_until"),
            started_at=func.coalesce(c.started_at, now),
            next_attempt_at=None,
            requeued_at=None,
            deliveries=c.deliveries + 1,
            lease_expiries=c.lease_expiries + case((c.status == RUNNING, 1), else_=0),
        )
        .returning(*jobs.c)  # the claimed rows in the same round trip
    )


_CLAIM = _claim_statement(many=False)
_CLAIM_MANY = driver_sql(_claim_statement(many=True))  # run by psycopg (``db.driver_rows``)


def claim_job(session: Session, *, job_id: str, owner: str, lease_s: float) -> Claim:
    """Take the job's lease if it is waiting and due, or if its last lease expired."""
    now = utcnow()
    params = {
        "c_id": job_id,
        "c_owner": owner,
        "c_now": now,
        "c_soon": now + timedelta(seconds=EARLY_S),
        "c_until": now + timedelta(seconds=lease_s),
    }
    claimed = session.connection().execute(_CLAIM, params).mappings().one_or_none()
    if claimed is not None:  # a detached Job built from the row: no ORM load machinery
        return Claim(detached_job(claimed))
    row = session.execute(
        select(Job.status, Job.next_attempt_at).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return Claim(None)
    return Claim(None, status=row[0], due_at=row[1])


def claim_jobs(session: Session, *, owners: dict[str, str], lease_s: float) -> dict[str, Claim]:
    """``claim_job`` for each ``job id -> owner`` in ``owners``, in one UPDATE on Postgres.

    Every job gets the answer ``claim_job`` would have given it alone; a job listed
    twice is not possible (a dict). Other databases claim one job at a time.
    """
    if session.get_bind().dialect.name != "postgresql":
        return {
            job_id: claim_job(session, job_id=job_id, owner=owner, lease_s=lease_s)
            for job_id, owner in owners.items()
        }
    return claim_jobs_by(partial(driver_rows, session.connection()), owners=owners, lease_s=lease_s)


_MISSED = "SELECT id, status, next_attempt_at FROM jobs WHERE id = ANY(%(ids)s::text[])"


def claim_jobs_by(rows: Rows, *, owners: dict[str, str], lease_s: float) -> dict[str, Claim]:
    """``claim_jobs`` on Postgres, each statement run by ``rows`` (a session's connection,
    or ``store.prepared``): one UPDATE, and a look at the jobs it did not claim."""
    now = utcnow()
    params = {
        "c_ids": list(owners),
        "c_owners": list(owners.values()),
        "c_now": now,
        "c_soon": now + timedelta(seconds=EARLY_S),
        "c_until": now + timedelta(seconds=lease_s),
    }
    claims: dict[str, Claim] = {}
    for row in rows(_CLAIM_MANY.sql, _CLAIM_MANY.bound(params)):
        job = detached_job(row)
        claims[job.id] = Claim(job)
    missed = [job_id for job_id in owners if job_id not in claims]
    if missed:
        for row in rows(_MISSED, {"ids": missed}):
            claims[row["id"]] = Claim(None, status=row["status"], due_at=row["next_attempt_at"])
    return {job_id: claims.get(job_id, Claim(None)) for job_id in owners}


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
    return (Job.id == job_id, by_id_only((Job.status == RUNNING) & (Job.lease_owner == owner)))


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


@lru_cache(maxsize=64)
def _finish_statement(columns: tuple[str, ...]) -> Any:
    """The final UPDATE for one set of result columns, built once and reused."""
    table: Any = Job.__table__
    values: dict[str, Any] = {c: bindparam(f"v_{c}") for c in columns}
    values.update(finished_at=bindparam("v_finished_at"), lease_expires_at=None)
    values["next_attempt_at"] = None
    if "attempts" not in values:  # a caller that sets them itself adds nothing
        values["attempts"] = table.c.attempts + bindparam("f_add_attempts")
    if "cost_micro_usd" not in values:
        values["cost_micro_usd"] = table.c.cost_micro_usd + bindparam(
            "f_add_cost", type_=BigInteger()
        )
    return (
        update(table)
        .where(
            table.c.id == bindparam("f_id"),
            by_id_only((table.c.status == RUNNING) & (table.c.lease_owner == bindparam("f_owner"))),
        )
        .values(values)
    )


def finish_job(
    session: Session,
    *,
    job_id: str,
    owner: str,
    values: dict[str, Any],
    add_cost_micro_usd: int | None = None,
) -> bool:
    """Make the job final if this owner still holds its lease; False if it lost it.

    ``add_cost_micro_usd``: the final attempt was recorded with ``bill_job=False``;
    count it and add its cost in this same statement.
    """
    statement = _finish_statement(tuple(sorted(values)))
    params = {f"v_{c}": v for c, v in values.items()}
    params.update(f_id=job_id, f_owner=owner, v_finished_at=utcnow())
    params.update(
        f_add_attempts=0 if add_cost_micro_usd is None else 1,
        f_add_cost=add_cost_micro_usd or 0,
    )
    result = session.connection().execute(statement, params)
    return bool(result.rowcount == 1)
