"""Admission's cost hook: default objectives, live statistics and budget reservations.

The dispatcher and the operator's controls call it (COSTS.md):

    defaults(tenant, request)          the request's objective, else its tenant's
    shares(rows)                       each job row's worst case (``orchestrator.costs.bounds``)
    reserved(tenant, holder, rows)     hold it, or 402; given back if the rows are not written
    redriving(tenant)                  the same for jobs a re-drive queues again

and ``install`` makes the process's live statistics the default for every route
plan (``orchestrator.routing.route`` reads them), so experiments, pipelines and
``switchyard route`` predict latency from the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.costs.bounds import job_upper_bound, pipeline_upper_bound, request_tokens
from orchestrator.costs.budgets import Budgets
from orchestrator.routing import live_stats
from orchestrator.store import budget_holds
from orchestrator.store.models import Job, utcnow

DEFAULT_MAX_TOKENS = JobRequest.model_fields["max_tokens"].default


def shared_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.effective_redis_url, socket_timeout=5, socket_connect_timeout=2
    )


def install_live_stats(settings: Settings, client: redis.Redis | None = None) -> None:
    """Make live statistics from this cluster's Redis the default for route plans."""
    client = client or shared_redis(settings)
    live_stats.install(live_stats.LiveStats(client, prefix=settings.redis_key_prefix))


def row_bound(catalog: Catalog, row: Mapping[str, Any], input_tokens: int) -> int:
    """What one job row may cost at most (micro-USD): its budget reservation.

    A plain job: one call on the dearest deployment of its plan. A pipeline's row:
    every step (``cost_bounds.pipeline_upper_bound``; step 0's plan is the row's).
    """
    request = row.get("request") or {}
    plan = [d for d in (catalog.find(n) for n in row.get("plan") or []) if d is not None]
    if request.get("steps"):
        parsed = JobRequest.model_validate(request)
        return pipeline_upper_bound(parsed, catalog, first_plan=plan or None).total_micro_usd
    max_tokens = int(request.get("max_tokens") or DEFAULT_MAX_TOKENS)
    return job_upper_bound(plan, input_tokens, max_tokens)


@dataclass
class CostHook:
    """Budgets and objectives at admission; one per dispatcher."""

    budgets: Budgets
    catalog: Catalog
    hold_s: float

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, catalog: Catalog) -> CostHook:
        client = shared_redis(settings)
        install_live_stats(settings, client)
        budgets = Budgets(client, engine, prefix=settings.redis_key_prefix)
        return cls(budgets, catalog, hold_s=hold_seconds(settings))

    def defaults(self, tenant_id: str, request: JobRequest) -> JobRequest:
        """The request with its tenant's objective and strategy where it names none."""
        policy = self.budgets.policy(tenant_id)
        update: dict[str, str] = {}
        if request.objective is None and policy.objective is not None:
            update["objective"] = policy.objective
        if request.strategy is None and policy.strategy is not None and request.model is None:
            update["strategy"] = policy.strategy
        return request.model_copy(update=update) if update else request

    def shares(
        self, tenant_id: str, rows: Sequence[tuple[Mapping[str, Any], JobRequest, int]]
    ) -> list[int]:
        """Each job row's reservation, given the request it was made from and its messages'
        token estimate (routing's); nothing for a tenant without a budget."""
        if not self.budgets.policy(tenant_id).limited:
            return [0] * len(rows)
        return [row_bound(self.catalog, row, request_tokens(r, t)) for row, r, t in rows]

    @contextmanager
    def reserved(
        self, tenant_id: str, holder: str, rows: Sequence[dict[str, Any]], shares: Sequence[int]
    ) -> Iterator[int]:
        """Hold the job rows' worst-case cost while they are written; released if that fails.

        ``shares`` is each row's (``shares``); ``holder`` is the job id, or the batch id
        for a batch. If the tenant has a budget, each row records what it holds.
        """
        amount = sum(shares)
        if self.budgets.reserve(tenant_id, holder, amount, self._hold_s(rows)):
            for row, share in zip(rows, shares, strict=True):
                row[budget_holds.HELD] = share
        try:
            yield amount
        except BaseException:
            if self.budgets.policy(tenant_id).limited:
                self.budgets.release(tenant_id, holder, amount)
            raise

    def _hold_s(self, rows: Sequence[Mapping[str, Any]]) -> float:
        """Long enough for the latest deadline among the rows, and a minute to settle."""
        now, hold_s = utcnow(), self.hold_s
        for row in rows:
            deadline = row.get("deadline_at")
            if deadline is not None:
                hold_s = max(hold_s, (deadline - now).total_seconds() + 60.0)
        return hold_s

    @contextmanager
    def redriving(self, tenant_id: str) -> Iterator[Callable[[Session, Sequence[str]], None]]:
        """Around a re-drive's transaction: ``hold(session, job_ids)`` reserves for the jobs
        it queued again as admission would for new ones, or raises ``BudgetExceeded`` (the
        re-drive is rolled back, the same 402). A failed commit gives it all back.

        Each job holds its own bound again; a pipeline's step re-driven by itself adds
        its bound to its parent's hold.
        """
        taken: list[tuple[str, int]] = []

        def hold(session: Session, job_ids: Sequence[str]) -> None:
            if not job_ids or not self.budgets.policy(tenant_id).limited:
                return
            holds, by_holder = self._redrive_holds(session, job_ids)
            for holder, amount in sorted(by_holder.items()):
                self.budgets.reserve(tenant_id, holder, amount, self.hold_s)
                taken.append((holder, amount))
            budget_holds.set_holds(session, holds)

        try:
            yield hold
        except BaseException:
            for holder, amount in taken:
                self.budgets.release(tenant_id, holder, amount)
            raise

    def _redrive_holds(
        self, session: Session, job_ids: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """What each re-driven job (a step: its parent) holds now, and the sums by holder."""
        columns = (Job.id, Job.batch_id, Job.parent_job_id, Job.plan, Job.request)
        holds: dict[str, int] = {}
        by_holder: dict[str, int] = {}
        rows = session.execute(select(*columns).where(Job.id.in_(list(job_ids))))
        for job_id, batch_id, parent_id, plan, request in rows:
            tokens = request_tokens(JobRequest.model_validate(request))
            share = row_bound(self.catalog, {"plan": plan, "request": request}, tokens)
            if parent_id is None:  # a fresh reservation replaces whatever it held
                holder, holds[job_id] = batch_id or job_id, share
            else:  # a step draws from its parent: the parent holds this much more
                parent = session.execute(
                    select(Job.batch_id, Job.status, Job.budget_held_micro_usd)
                    .where(Job.id == parent_id)
                    .with_for_update()
                ).one()
                still = 0 if parent.status in budget_holds.FINAL else parent.budget_held_micro_usd
                holder = parent.batch_id or parent_id
                holds[parent_id] = holds.get(parent_id, still) + share
            by_holder[holder] = by_holder.get(holder, 0) + share
        return holds, by_holder


def hold_seconds(settings: Settings) -> float:
    """How long a reservation lives: a job's deadline, and a minute to settle it."""
    return float(settings.job_deadline_s) + 60.0
