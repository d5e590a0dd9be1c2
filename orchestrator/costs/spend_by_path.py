"""Spend by path (synchronous calls, provider batches) and what the batch path saved.

    by_path(session, tenant_id, window, total_micro_usd, catalog)

The provider batch path's ledger rows (``cost_ledger.path = 'provider_batch'``,
a partial index per tenant and time) are read for the window and grouped by
deployment; the synchronous path's spend is the window's total (from the
``usage_daily`` rollup) less theirs. ``saved`` is what the same tokens
(input, cached input, output) would have cost at the deployment's synchronous
prices in today's catalog, less what they cost. A deployment no longer in the
catalog adds its spend but no saving (``unpriced_micro_usd``). Answers the
provider billed that were not their job's answer (``superseded``: the job had
left the batch) count as spend on the batch path like any other line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.core.catalog import Catalog
from orchestrator.core.schemas import Usage
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.costs.usage_reports import Window
from orchestrator.store.models import LedgerEntry

PROVIDER_BATCH = "provider_batch"


@dataclass(frozen=True)
class PathSpend:
    """The window's spend split by path, and the batch path's saving."""

    sync_micro_usd: int
    batch_micro_usd: int
    batch_calls: int
    batch_at_sync_prices_micro_usd: int
    unpriced_micro_usd: int = 0

    @property
    def saved_micro_usd(self) -> int:
        priced = self.batch_micro_usd - self.unpriced_micro_usd
        return self.batch_at_sync_prices_micro_usd - priced

    def as_json(self) -> dict[str, Any]:
        return {
            "sync": {"cost_micro_usd": self.sync_micro_usd},
            "provider_batch": {
                "cost_micro_usd": self.batch_micro_usd,
                "billed_calls": self.batch_calls,
                "at_sync_prices_micro_usd": self.batch_at_sync_prices_micro_usd,
                "saved_micro_usd": self.saved_micro_usd,
                "unpriced_micro_usd": self.unpriced_micro_usd,
            },
        }


def by_path(
    session: Session, *, tenant_id: str, window: Window, total_micro_usd: int, catalog: Catalog
) -> PathSpend:
    """The tenant's spend in ``window`` by path (see the module's docstring)."""
    start = datetime.combine(window.since, time(), tzinfo=UTC)
    end = datetime.combine(window.until + timedelta(days=1), time(), tzinfo=UTC)
    rows = session.execute(
        select(
            LedgerEntry.deployment,
            func.count(),
            func.sum(LedgerEntry.input_tokens),
            func.sum(LedgerEntry.cached_input_tokens),
            func.sum(LedgerEntry.output_tokens),
            func.sum(LedgerEntry.reasoning_tokens),
            func.sum(LedgerEntry.cost_micro_usd),
        )
        .where(
            LedgerEntry.tenant_id == tenant_id,
            LedgerEntry.path == PROVIDER_BATCH,
            LedgerEntry.created_at >= start,
            LedgerEntry.created_at < end,
        )
        .group_by(LedgerEntry.deployment)
    ).all()
    calls = spent = at_sync = unpriced = 0
    for name, count, tokens_in, cached, tokens_out, reasoning, cost in rows:
        calls, spent = calls + int(count), spent + int(cost or 0)
        deployment = catalog.find(name)
        if deployment is None:
            unpriced += int(cost or 0)
            continue
        usage = Usage(
            input_tokens=int(tokens_in or 0),
            cached_input_tokens=int(cached or 0),
            output_tokens=int(tokens_out or 0),
            reasoning_tokens=int(reasoning or 0),
        )
        at_sync += cost_micro_usd(deployment, usage)
    return PathSpend(total_micro_usd - spent, spent, calls, at_sync, unpriced)
