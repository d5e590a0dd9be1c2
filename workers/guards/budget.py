"""The budget guard: no provider call starts unless its worst case is held for its job.

Admission reserves a job's worst case from what it knows then (COSTS.md,
``orchestrator.costs.bounds``). Some calls are only known in the worker: a
session's turn carries its stored history, a repair call carries the rejected
answer, an escalation reaches the next deployment, a pipeline's later step
carries what the steps before it wrote. Before each call of a tenant that has a
budget, this guard prices the call as it will be sent (all of ``max_tokens`` on
this deployment) against what the job still holds (a step: its pipeline), less
what it was billed and is not counted yet:

    enough held         -> call
    not enough          -> reserve the difference under the job's holder, as
                           admission would (atomic against the limits), and call
    the budget refuses  -> ``FailJob`` naming the budget: the job fails, and
                           a pipeline fails with its step
    Redis or the database unreachable -> the job is handed back, as the rate
                           limiter does (``RateLimitWait``), and no call is made

It runs after the session and cache guards (the context is assembled, a cache
hit never reaches it) and before the breaker and the rate limits.
"""

from __future__ import annotations

import random
from datetime import UTC

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.core.errors import BudgetExceeded
from orchestrator.costs.bounds import call_max_cost, request_tokens
from orchestrator.costs.budgets import Budgets
from orchestrator.store import budget_holds
from orchestrator.store.db import session_scope, statement_scope
from orchestrator.store.models import utcnow
from workers.guards.base import Call, FailJob, Guard, RateLimitWait


class BudgetGuard(Guard):
    """Tops a job's reservation up before a call that could cost more than it holds."""

    def __init__(self, budgets: Budgets, engine: Engine, *, hold_s: float) -> None:
        self.budgets = budgets
        self.engine = engine
        self.hold_s = hold_s

    def before_call(self, call: Call) -> None:
        try:
            self._hold_enough(call)
        except (redis.RedisError, SQLAlchemyError) as exc:  # hand the job back, unspent
            raise RateLimitWait(1 + random.random(), f"budget state unreachable: {exc}") from exc

    def _hold_enough(self, call: Call) -> None:
        if not call.tenant_id or not self.budgets.policy(call.tenant_id).limited:
            return
        tokens = max(call.input_tokens, request_tokens(call.request))
        need = call_max_cost(call.deployment, tokens, call.request.max_tokens)
        with statement_scope(self.engine) as session:
            hold = budget_holds.hold_of(session, call.job_id)
        if hold is None or need <= hold.available_micro_usd:
            return
        more = need - hold.available_micro_usd  # (billed beyond the hold is covered too)
        hold_s = self.hold_s
        if hold.deadline_at is not None:  # as long as the job may run, and a minute
            deadline = hold.deadline_at
            deadline = deadline if deadline.tzinfo else deadline.replace(tzinfo=UTC)
            hold_s = max(hold_s, (deadline - utcnow()).total_seconds() + 60.0)
        try:
            self.budgets.reserve(hold.tenant_id, hold.holder, more, hold_s)
        except BudgetExceeded as exc:
            raise FailJob(f"{exc} (a call on {call.name} needed more than the job held)") from exc
        with session_scope(self.engine) as session:
            budget_holds.add_hold(session, hold.target_id, more)
