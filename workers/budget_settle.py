"""Settles a final job's budget reservation: drop what admission held, count what it cost.

Called by the task body after every delivery (``workers.tasks``); only final
outcomes settle. The reservation admission made (``orchestrator.cost_hook``) is
recomputed from the stored job (its plan, prompt estimate and ``max_tokens``),
and the job's real cost is its ``cost_micro_usd``, the sum of its ledger rows,
already committed. A failure here never fails the job: the reservation then
expires at the job's deadline (COSTS.md).
"""

from __future__ import annotations

import logging
import threading

import redis
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.budgets import Budgets
from orchestrator.catalog import Catalog
from orchestrator.cost_hook import row_max_cost, shared_redis
from orchestrator.schemas import JobRequest
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job
from orchestrator.tokens import estimate_request_tokens
from workers.execute import Outcome, Runtime

log = logging.getLogger(__name__)
FINAL = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED})


class BudgetSettler:
    """One per worker process, sharing the runtime's engine and catalog."""

    def __init__(self, budgets: Budgets, catalog: Catalog) -> None:
        self.budgets = budgets
        self.catalog = catalog

    def settle(self, job_id: str, outcome: Outcome, *, tenant_id: str | None = None) -> None:
        """Settle a final job; ``tenant_id``, when known, skips tenants without budgets at once."""
        if outcome not in FINAL:
            return
        if tenant_id is not None and not self.budgets.policy(tenant_id).limited:
            return
        try:
            self._settle(job_id)
        except (redis.RedisError, SQLAlchemyError) as exc:
            log.warning("budget for job %s not settled (%s); it expires", job_id, exc)

    def _settle(self, job_id: str) -> None:
        with session_scope(self.budgets.engine) as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            tenant_id, holder = job.tenant_id, job.batch_id or job.id
            row = {"plan": list(job.plan), "request": dict(job.request)}
            cost = job.cost_micro_usd
        if not self.budgets.policy(tenant_id).limited:
            return
        request = JobRequest.model_validate(row["request"])
        tokens = estimate_request_tokens(request.canonical_messages())
        reserved = row_max_cost(self.catalog, row, tokens)
        self.budgets.settle(tenant_id, holder, reserved, cost)


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
            _settler = BudgetSettler(budgets, runtime.catalog)
        return _settler
