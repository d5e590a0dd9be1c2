"""What each job holds of its tenant's budget, and settling it exactly once (COSTS.md).

Two columns on every job row carry the bookkeeping:

    budget_held_micro_usd      what of the tenant's reservation (in Redis, under the
                               holder: the job's batch, else the job) it still holds;
                               a pipeline's parent holds for all its steps, its steps 0
    budget_counted_micro_usd   how much of its ``cost_micro_usd`` the spend counters count

``settle(session, condition)`` brings the rows in ``condition`` up to date under
their row locks, and returns what to do in Redis once the transaction commits:

    a job (or step) billed more      spend += cost - counted; its holder (a step's:
                                     its parent's) gives back as much of what it
                                     holds; counted = cost
    a holder that is final           gives back all it still holds (the leftover)
                                     unless ``keep`` names it (a call of it may still
                                     be in flight: its worker settles it when it ends)

A pipeline's parent never counts its own ``cost_micro_usd``: that is the sum of its
steps', counted step by step. Because every settlement moves the columns and the
Redis amounts by the same figures under the row lock, settling twice, or from
several places at once (the worker, a cancel, the reconciler), counts each
micro-dollar once. Redis is written after the commit: a crash in between leaves
the reservation to expire and the spend to be reloaded from the rollup, as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, func, select, text, update
from sqlalchemy.orm import Session, aliased

from orchestrator.core.schemas import FINAL_STATUSES
from orchestrator.store.models import Job

FINAL = frozenset(s.value for s in FINAL_STATUSES)
HELD = "budget_held_micro_usd"
COUNTED = "budget_counted_micro_usd"


@dataclass(frozen=True)
class Settlement:
    """What one holder gives back and what its tenant spent, to apply in Redis."""

    tenant_id: str
    holder: str
    release_micro_usd: int
    spent_micro_usd: int


@dataclass
class _Row:
    id: str
    tenant_id: str
    batch_id: str | None
    parent_id: str | None
    status: str
    cost: int
    counted: int
    held: int
    is_parent: bool

    @property
    def holder(self) -> str:
        return self.batch_id or self.id


@dataclass(frozen=True)
class Hold:
    """Where a job's calls draw from: its own row, or its pipeline's parent."""

    target_id: str
    tenant_id: str
    holder: str
    available_micro_usd: int  # held, less what was billed and is not counted yet
    deadline_at: datetime | None = None


def lock_for_write(session: Session) -> None:
    """On SQLite, take the write lock now, so what we read next cannot change before we
    write (Postgres locks the rows themselves: ``FOR UPDATE``)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"UPDATE jobs SET {COUNTED} = {COUNTED} WHERE id = ''"))


def _columns() -> tuple[Any, ...]:
    child = aliased(Job)
    has_steps = exists().where(child.parent_job_id == Job.id)
    return (
        Job.id,
        Job.tenant_id,
        Job.batch_id,
        Job.parent_job_id,
        Job.status,
        Job.cost_micro_usd,
        Job.budget_counted_micro_usd,
        Job.budget_held_micro_usd,
        has_steps,
    )


def _load(session: Session, condition: ColumnElement[bool]) -> list[_Row]:
    query = select(*_columns()).where(condition).order_by(Job.id).with_for_update(of=Job)
    return [_Row(*r) for r in session.execute(query)]


def settle(
    session: Session, condition: ColumnElement[bool], *, keep: Collection[str] = ()
) -> list[Settlement]:
    """Settle every job in ``condition`` that has something to settle (see the module)."""
    lock_for_write(session)
    pending = (Job.cost_micro_usd > Job.budget_counted_micro_usd) | (Job.budget_held_micro_usd > 0)
    # Parents first, as a cancel locks them: a step's settlement draws from its parent.
    stepped = select(Job.parent_job_id).where(condition & pending, Job.parent_job_id.is_not(None))
    parents = sorted({p for p in session.scalars(stepped) if p is not None})
    rows = {r.id: r for r in _load(session, Job.id.in_(parents))} if parents else {}
    rows.update({r.id: r for r in _load(session, condition & pending) if r.id not in rows})
    late = {r.parent_id for r in rows.values() if r.parent_id and r.parent_id not in rows}
    if late:  # a step that became billed meanwhile
        rows.update({r.id: r for r in _load(session, Job.id.in_(sorted(late)))})
    before = {r.id: (r.counted, r.held) for r in rows.values()}
    release: dict[tuple[str, str], int] = defaultdict(int)
    spent: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows.values():
        if row.is_parent:
            continue
        delta = max(0, row.cost - row.counted)
        target = rows[row.parent_id] if row.parent_id else row
        draw = min(max(target.held, 0), delta)
        target.held -= draw
        row.counted = max(row.cost, row.counted)
        key = (target.tenant_id, target.holder)
        spent[key] += delta
        release[key] += draw
    for row in rows.values():
        if row.parent_id is None and row.status in FINAL and row.held and row.id not in keep:
            release[(row.tenant_id, row.holder)] += max(row.held, 0)
            row.held = 0
    changed = [r for r in rows.values() if before[r.id] != (r.counted, r.held)]
    _write(session, changed)
    keys = set(release) | set(spent)
    found = [Settlement(t, h, release[(t, h)], spent[(t, h)]) for t, h in sorted(keys)]
    return [s for s in found if s.release_micro_usd or s.spent_micro_usd]


def _write(session: Session, rows: Sequence[_Row]) -> None:
    if not rows:
        return
    statement = (
        update(Job.__table__)  # type: ignore[arg-type]
        .where(Job.__table__.c.id == bindparam("b_id"))
        .values({COUNTED: bindparam("b_counted"), HELD: bindparam("b_held")})
    )
    params = [{"b_id": r.id, "b_counted": r.counted, "b_held": r.held} for r in rows]
    session.connection().execute(statement, params)


def hold_of(session: Session, job_id: str) -> Hold | None:
    """What the job (a step: its pipeline) may still spend of what it holds."""
    columns = (Job.id, Job.tenant_id, Job.batch_id, Job.parent_job_id, Job.deadline_at)
    budget = (Job.cost_micro_usd, Job.budget_counted_micro_usd, Job.budget_held_micro_usd)
    job = session.execute(select(*columns, *budget).where(Job.id == job_id)).one_or_none()
    if job is None:
        return None
    if job.parent_job_id is None:
        uncounted = max(0, job.cost_micro_usd - job.budget_counted_micro_usd)
        available = job.budget_held_micro_usd - uncounted
        return Hold(job.id, job.tenant_id, job.batch_id or job.id, available, job.deadline_at)
    parent = session.execute(select(*columns, *budget).where(Job.id == job.parent_job_id)).one()
    billed = func.coalesce(func.sum(Job.cost_micro_usd - Job.budget_counted_micro_usd), 0)
    uncounted = int(session.scalar(select(billed).where(Job.parent_job_id == parent.id)) or 0)
    available = parent.budget_held_micro_usd - max(0, uncounted)
    holder = parent.batch_id or parent.id
    return Hold(parent.id, parent.tenant_id, holder, available, parent.deadline_at)


def add_hold(session: Session, target_id: str, amount_micro_usd: int) -> None:
    """The job (or pipeline parent) now holds ``amount`` more (a top-up was reserved)."""
    session.execute(
        update(Job)
        .where(Job.id == target_id)
        .values({HELD: Job.budget_held_micro_usd + amount_micro_usd})
        .execution_options(synchronize_session=False)
    )


def set_holds(session: Session, holds: dict[str, int]) -> None:
    """Jobs hold exactly these amounts now (re-driven: a fresh reservation each)."""
    if not holds:
        return
    statement = (
        update(Job.__table__)  # type: ignore[arg-type]
        .where(Job.__table__.c.id == bindparam("b_id"))
        .values({HELD: bindparam("b_held")})
    )
    session.connection().execute(statement, [{"b_id": k, "b_held": v} for k, v in holds.items()])
