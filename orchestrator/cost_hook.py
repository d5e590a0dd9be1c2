"""Admission's cost hook: default objectives, live statistics and budget reservations.

The dispatcher calls it in three places (COSTS.md):

    defaults(tenant, request)          the request's objective, else its tenant's
    reserve(tenant, holder, routed)    hold the jobs' worst-case cost, or 402
    release(...)                       give it back when the jobs were not written

and ``install`` makes the process's live statistics the default for every route
plan (``orchestrator.routing.route`` reads them), so experiments, pipelines and
``switchyard route`` predict latency from the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Engine

from orchestrator import live_stats
from orchestrator.budgets import Budgets, max_cost_micro_usd
from orchestrator.catalog import Catalog
from orchestrator.config import Settings
from orchestrator.schemas import JobRequest

DEFAULT_MAX_TOKENS = JobRequest.model_fields["max_tokens"].default


def shared_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.effective_redis_url, socket_timeout=5, socket_connect_timeout=2
    )


def install_live_stats(settings: Settings, client: redis.Redis | None = None) -> None:
    """Make live statistics from this cluster's Redis the default for route plans."""
    client = client or shared_redis(settings)
    live_stats.install(live_stats.LiveStats(client, prefix=settings.redis_key_prefix))


def row_max_cost(catalog: Catalog, row: Mapping[str, Any], input_tokens: int) -> int:
    """What one job row may cost at most (micro-USD): its budget reservation.

    The worker recomputes the same figure from the stored job when it settles
    (``workers.budget_settle``): the plan's names, the prompt estimate, ``max_tokens``.
    """
    plan = [d for d in (catalog.find(n) for n in row.get("plan") or []) if d is not None]
    max_tokens = int((row.get("request") or {}).get("max_tokens") or DEFAULT_MAX_TOKENS)
    return max_cost_micro_usd(plan, input_tokens, max_tokens)


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
        return cls(budgets, catalog, hold_s=float(settings.job_deadline_s) + 60.0)

    def defaults(self, tenant_id: str, request: JobRequest) -> JobRequest:
        """The request with its tenant's objective and strategy where it names none."""
        policy = self.budgets.policy(tenant_id)
        update: dict[str, str] = {}
        if request.objective is None and policy.objective is not None:
            update["objective"] = policy.objective
        if request.strategy is None and policy.strategy is not None and request.model is None:
            update["strategy"] = policy.strategy
        return request.model_copy(update=update) if update else request

    @contextmanager
    def reserved(
        self, tenant_id: str, holder: str, rows: Sequence[tuple[Mapping[str, Any], int]]
    ) -> Iterator[int]:
        """Hold the job rows' worst-case cost while they are written; released if that fails.

        ``rows`` pairs each job row with its estimated prompt tokens; ``holder`` is
        the job id, or the batch id for a batch.
        """
        amount = sum(row_max_cost(self.catalog, row, tokens) for row, tokens in rows)
        self.budgets.reserve(tenant_id, holder, amount, self.hold_s)
        try:
            yield amount
        except BaseException:
            if self.budgets.policy(tenant_id).limited:
                self.budgets.release(tenant_id, holder, amount)
            raise
