"""Settles a job's budget after each delivery: count what it was billed, give back what
it no longer needs.

Called by the task body after every delivery that ran (``workers.tasks``): a
finished job, one handed back after billed calls (a rejected answer), and one
whose lease was lost (cancelled or expired while a call was in flight: the call
was billed all the same). ``store.budget_holds.settle`` does the bookkeeping
under the job's row lock (a step's: its pipeline parent's too): the cost billed
since the last settlement is added to the spend counters and drawn from the
hold, and a job (or pipeline) that is final gives back the rest. A failure here
never fails the job: the reservation then expires at the job's deadline (COSTS.md).
"""

from __future__ import annotations

import logging
import threading

import redis
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.costs.admission_hook import shared_redis
from orchestrator.costs.budgets import Budgets
from orchestrator.store import budget_holds
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job
from workers.execute import Outcome, Runtime

log = logging.getLogger(__name__)


class BudgetSettler:
    """One per worker process, sharing the runtime's engine."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets

    def settle(self, job_id: str, outcome: Outcome, *, tenant_id: str | None = None) -> None:
        """Settle after a delivery; ``tenant_id``, when known, skips tenants without budgets."""
        if outcome is Outcome.SKIPPED:  # nothing ran
            return
        if tenant_id is not None and not self.budgets.policy(tenant_id).limited:
            return
        try:
            with session_scope(self.budgets.engine) as session:
                settled = budget_holds.settle(session, Job.id == job_id)
            self.budgets.apply(settled)
        except (redis.RedisError, SQLAlchemyError) as exc:
            log.warning("budget for job %s not settled (%s); it expires", job_id, exc)


_settler: BudgetSettler | None = None
_lock = threading.Lock()


def settler(runtime: Runtime) -> BudgetSettler:
    """The process-wide settler, built on first use."""
    global _settler
    with _lock:
        if _settler is None:
            settings = runtime.settings
            budgets = Budgets(
                shared_redis(settings), runtime.engine, prefix=settings.redis_key_prefix
            )
            _settler = BudgetSettler(budgets)
        return _settler
