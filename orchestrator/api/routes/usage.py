"""``GET /v1/usage`` (the caller's spend, grouped) and the admin's budget settings.

``PUT /admin/tenants/{id}/budget`` (admin key) sets a tenant's daily and monthly
budgets, warning ratio and default objective (COSTS.md).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from orchestrator.api.bodies import JSONBodyRoute
from orchestrator.api.deps import AdminDep, SessionDep, StateDep, TenantDep
from orchestrator.core.errors import NotFound
from orchestrator.core.pipeline_schemas import Strategy
from orchestrator.core.schemas import Objective
from orchestrator.costs import spend_by_path
from orchestrator.costs import usage_reports as usage
from orchestrator.costs.budgets import TenantPolicy, set_budget, usd_to_micro
from orchestrator.store.db import session_scope

router = APIRouter(prefix="/v1", tags=["usage"])
admin = APIRouter(prefix="/admin", tags=["admin"], route_class=JSONBodyRoute)


@router.get("/usage")
async def get_usage(
    state: StateDep,
    tenant_id: TenantDep,
    group_by: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Spend and calls (billed, cache hits, failed unbilled) per group, spend by path (sync,
    provider batch) and what the batch path saved, with budget warnings."""
    groups = usage.parse_group_by(group_by)
    window = usage.Window.parse(since, until)
    return await run_in_threadpool(_report, state, tenant_id, groups, window)


def _report(
    state: Any, tenant_id: str, groups: tuple[str, ...], window: usage.Window
) -> dict[str, Any]:
    with session_scope(state.engine) as session:
        rows = usage.usage_rows(session, tenant_id=tenant_id, group_by=groups, window=window)
        total = usage.totals(rows)
        paths = spend_by_path.by_path(
            session,
            tenant_id=tenant_id,
            window=window,
            total_micro_usd=total["cost_micro_usd"],
            catalog=state.dispatcher.catalog,
        )
    budgets = [b.as_json() for b in state.dispatcher.costs.budgets.status(tenant_id)]
    warnings = [
        f"{b['period']} budget {b['used_ratio']:.0%} used (warning at {b['warn_ratio']:.0%})"
        for b in budgets
        if b["warning"]
    ]
    return {
        "object": "usage",
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
        "group_by": list(groups),
        "data": rows,
        "total": total,
        "by_path": paths.as_json(),
        "budgets": budgets,
        "warnings": warnings,
    }


MAX_BUDGET_USD = 1e9  # a billion dollars in micro-USD still fits the ledger's 64-bit columns


class BudgetSettings(BaseModel):
    """A tenant's budgets in USD (null: no limit), warning ratio, default objective, strategy."""

    daily_usd: float | None = Field(default=None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    monthly_usd: float | None = Field(default=None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    warn_ratio: float = Field(default=0.8, gt=0, le=1, allow_inf_nan=False)
    objective: Objective | None = None
    strategy: Strategy | None = None


@admin.put("/tenants/{tenant_id}/budget")
def put_budget(
    tenant_id: str, body: BudgetSettings, session: SessionDep, _: AdminDep
) -> dict[str, Any]:
    """Set a tenant's daily and monthly budgets, warning ratio and default objective."""
    policy = TenantPolicy(
        daily_micro_usd=usd_to_micro(body.daily_usd),
        monthly_micro_usd=usd_to_micro(body.monthly_usd),
        warn_ratio=body.warn_ratio,
        objective=body.objective,
        strategy=body.strategy,
    )
    if set_budget(session, tenant_id=tenant_id, policy=policy) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return {"tenant_id": tenant_id, **asdict(policy)}
