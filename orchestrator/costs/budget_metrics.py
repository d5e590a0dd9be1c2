"""Budget gauges on the API's ``/metrics``, per period and never per tenant.

``/metrics`` is scraped without a tenant key, so a label with tenant ids would
list every customer to whoever can reach it (and grow a series per tenant). The
gauges here are aggregates over the tenants whose budgets this process has read
(``Budgets.status``): how many are at or over their warning ratio, and the
highest share of a budget used. Which tenant it is shows in ``GET /v1/usage``
(the tenant's own) and ``switchyard usage``.
"""

from __future__ import annotations

import threading

from prometheus_client import Gauge

TENANTS_WARNING = Gauge(
    "switchyard_budget_tenants_warning",
    "Tenants whose spend plus reservations is at or over their warning ratio, per period",
    ["period"],
)
USED_RATIO_MAX = Gauge(
    "switchyard_budget_used_ratio_max",
    "The highest spend plus reservations over the limit among tenants, per period",
    ["period"],
)


class BudgetGauges:
    """The last reading of each tenant's budget use, kept to publish aggregates only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, bool]] = {}

    def record(self, tenant_id: str, period: str, used_ratio: float, warning: bool) -> None:
        with self._lock:
            self._seen[(tenant_id, period)] = (used_ratio, warning)
            readings = [v for (_, p), v in self._seen.items() if p == period]
        TENANTS_WARNING.labels(period).set(sum(1 for _, warn in readings if warn))
        USED_RATIO_MAX.labels(period).set(max(ratio for ratio, _ in readings))


BUDGET_GAUGES = BudgetGauges()
