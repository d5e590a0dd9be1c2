"""Tenant budgets: checked at admission, held by reservation while jobs run.

    admission   reserve(tenant, holder, max cost)   one Lua call, atomic per tenant:
                spent today + reserved + max cost > daily limit?   -> 402 (BudgetExceeded)
                same for the month                                 -> 402
                else reserved[holder] += max cost
    re-drive    the same, for the jobs it queues again (``orchestrator.jobs.control``)
    any time    apply(settlements)                  what ``store.budget_holds.settle``
                                                    found: reserved[holder] -= what a
                                                    job gave back; spent += what it cost

A job's maximum cost is its worst case on the dearest deployment it may use; a
pipeline's is the sum over its steps (``orchestrator.costs.bounds``). Each job row
records what it holds and how much of its cost is counted, so settling (by the
worker as calls are billed and when the job ends, by a cancel, by the reconciler
when it expires a job) counts each cost once and gives back each reservation
once, and the worker's budget guard tops a job up (or fails it) before a call
that would cost more than it holds. Spend therefore never passes a limit by more
than what a reservation failed to cover: a worker killed between the ledger write
and the settle, whose reservation then expires at the job's deadline.

Spend counters live in Redis (``spend:<tenant>:d:<day>`` and ``:m:<month>``, UTC),
loaded from the ``usage_daily`` rollup when missing, so a Redis that lost
everything recovers. The holder is the job id, or the batch id for a batch (one
field for 50,000 jobs). Budgets, the warning ratio and the tenant's default
objective are read from the tenant row and cached for ``ttl_s`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import redis
from prometheus_client import Counter
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from orchestrator.core.errors import BudgetExceeded
from orchestrator.core.loop_guard import needs_io
from orchestrator.costs.budget_metrics import BUDGET_GAUGES
from orchestrator.costs.pricing import MICRO_PER_USD, format_usd
from orchestrator.store.budget_holds import Settlement
from orchestrator.store.db import session_scope
from orchestrator.store.models import Tenant, UsageDaily

BUDGET_REFUSALS = Counter(
    "switchyard_budget_refusals_total", "Requests refused with a 402 over a budget", ["period"]
)

RESERVE = """
local now = tonumber(ARGV[1])
local exp = redis.call('HGETALL', KEYS[4])
for i = 1, #exp, 2 do
  if tonumber(exp[i + 1]) < now then
    redis.call('HDEL', KEYS[3], exp[i]) redis.call('HDEL', KEYS[4], exp[i])
  end
end
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do reserved = reserved + tonumber(v) end
local day = tonumber(redis.call('GET', KEYS[1]) or '0')
local month = tonumber(redis.call('GET', KEYS[2]) or '0')
local amount = tonumber(ARGV[5])
local dl, ml = tonumber(ARGV[2]), tonumber(ARGV[3])
if dl >= 0 and day + reserved + amount > dl then return {1, day, reserved} end
if ml >= 0 and month + reserved + amount > ml then return {2, month, reserved} end
if amount > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[4], amount)
  local old = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0')
  redis.call('HSET', KEYS[4], ARGV[4], math.max(old, tonumber(ARGV[6])))
end
return {0, day, reserved + amount}
"""

SETTLE = """
if tonumber(ARGV[2]) > 0 then
  local left = redis.call('HINCRBY', KEYS[3], ARGV[1], -tonumber(ARGV[2]))
  if left <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) redis.call('HDEL', KEYS[4], ARGV[1]) end
end
local cost = tonumber(ARGV[3])
if cost > 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], cost) end
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], cost) end
end
return 1
"""

PERIODS = ("daily", "monthly")


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's budgets (micro-USD, None: unlimited), warning ratio and default objective."""

    daily_micro_usd: int | None = None
    monthly_micro_usd: int | None = None
    warn_ratio: float = 0.8
    objective: str | None = None
    strategy: str | None = None  # e.g. "cascade" for requests that name no strategy

    @property
    def limited(self) -> bool:
        return self.daily_micro_usd is not None or self.monthly_micro_usd is not None

    def limit(self, period: str) -> int | None:
        return self.daily_micro_usd if period == "daily" else self.monthly_micro_usd


@dataclass(frozen=True)
class PeriodStatus:
    """One budget's state: limit, spend, reservations, and whether it warns."""

    period: str
    limit_micro_usd: int | None
    spent_micro_usd: int
    reserved_micro_usd: int
    warn_ratio: float

    @property
    def used_ratio(self) -> float | None:
        if not self.limit_micro_usd:
            return None
        return (self.spent_micro_usd + self.reserved_micro_usd) / self.limit_micro_usd

    @property
    def warning(self) -> bool:
        ratio = self.used_ratio
        return ratio is not None and ratio >= self.warn_ratio

    def as_json(self) -> dict[str, object]:
        return {
            "period": self.period,
            "limit_micro_usd": self.limit_micro_usd,
            "spent_micro_usd": self.spent_micro_usd,
            "reserved_micro_usd": self.reserved_micro_usd,
            "used_ratio": None if self.used_ratio is None else round(self.used_ratio, 4),
            "warn_ratio": self.warn_ratio,
            "warning": self.warning,
        }


def month_start(day: date) -> date:
    return day.replace(day=1)


class Budgets:
    """Budget checks, reservations and settlements for every tenant, in Redis."""

    def __init__(
        self, client: redis.Redis, engine: Engine, *, prefix: str = "", ttl_s: float = 2.0
    ) -> None:
        self.client = client
        self.engine = engine
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._reserve = client.register_script(RESERVE)
        self._settle = client.register_script(SETTLE)
        self._policies: dict[str, tuple[float, TenantPolicy]] = {}
        self._reading: set[str] = set()  # tenants whose policy a thread is reading now
        self._lock = threading.Lock()

    def _keys(self, tenant_id: str, today: date) -> list[str]:
        base = f"{self.prefix}switchyard:budget:{{{tenant_id}}}"  # one hash slot per tenant
        return [
            f"{base}:spend:d:{today.isoformat()}",
            f"{base}:spend:m:{today.strftime('%Y-%m')}",
            f"{base}:reserved",
            f"{base}:reserved-exp",
        ]

    def policy(self, tenant_id: str) -> TenantPolicy:
        """The tenant's budgets and default objective, at most ``ttl_s`` old, or older by
        the moment another thread takes to read them afresh.

        One thread reads a stale policy again while the others keep the one they have:
        when it went stale, every worker thread that asked read the tenant's row at once
        (1,600 reads in a ``bench pipeline`` half of 20,000 jobs; BENCHMARKS.md,
        seventeenth session).
        """
        now = time.monotonic()
        with self._lock:
            hit = self._policies.get(tenant_id)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
            if hit is not None and tenant_id in self._reading:
                return hit[1]  # being read afresh by another thread
            self._reading.add(tenant_id)
        try:
            needs_io("the tenant's budgets")
            with session_scope(self.engine) as session:
                row = session.get(Tenant, tenant_id)
                found = TenantPolicy() if row is None else _policy_of(row)
            with self._lock:
                self._policies[tenant_id] = (now, found)
            return found
        finally:
            with self._lock:
                self._reading.discard(tenant_id)

    def _load_spend(self, tenant_id: str, today: date, keys: list[str]) -> None:
        """Make sure both spend counters exist, summed from the rollup when missing."""
        day_key, month_key = keys[0], keys[1]
        if self.client.exists(day_key, month_key) == 2:
            return
        with session_scope(self.engine) as session:
            day, month = spend_from_rollup(session, tenant_id, today)
        self.client.set(day_key, day, nx=True, ex=2 * 86_400)
        self.client.set(month_key, month, nx=True, ex=32 * 86_400)

    def reserve(self, tenant_id: str, holder: str, amount_micro_usd: int, hold_s: float) -> bool:
        """Hold ``amount`` for ``holder`` or raise ``BudgetExceeded`` naming the budget;
        False if the tenant has no budget (nothing is held)."""
        policy = self.policy(tenant_id)
        if not policy.limited:
            return False
        needs_io("a budget reservation")
        today = datetime.now(UTC).date()
        keys = self._keys(tenant_id, today)
        self._load_spend(tenant_id, today, keys)
        now_ms = int(time.time() * 1000)
        limits = [_or_unlimited(policy.limit(p)) for p in PERIODS]
        args: list[str | int] = [now_ms, *limits, holder, amount_micro_usd]
        args.append(now_ms + int(hold_s * 1000))
        refused, spent, reserved = (int(v) for v in self._reserve(keys=keys, args=args))
        if refused:
            period = PERIODS[refused - 1]
            BUDGET_REFUSALS.labels(period).inc()
            limit = policy.limit(period) or 0
            raise BudgetExceeded(period, _refusal(period, limit, spent, reserved, amount_micro_usd))
        self.status(tenant_id)  # refreshes the gauges
        return True

    def release(self, tenant_id: str, holder: str, amount_micro_usd: int) -> None:
        """Give back a reservation whose jobs were never written (admission failed)."""
        self.settle(tenant_id, holder, amount_micro_usd, 0)

    def settle(self, tenant_id: str, holder: str, reserved: int, cost_micro_usd: int) -> None:
        """Drop ``reserved`` of ``holder``'s reservation and count ``cost`` as spent."""
        keys = self._keys(tenant_id, datetime.now(UTC).date())
        self._settle(keys=keys, args=[holder, reserved, cost_micro_usd])

    def apply(self, settlements: Iterable[Settlement]) -> None:
        """Apply what ``store.budget_holds.settle`` found, for tenants that have a budget."""
        for found in settlements:
            if self.policy(found.tenant_id).limited:
                self.settle(
                    found.tenant_id, found.holder, found.release_micro_usd, found.spent_micro_usd
                )

    def status(self, tenant_id: str) -> list[PeriodStatus]:
        """Each budget's limit, spend and reservations (the usage API shows them); sets
        the budget gauges."""
        policy = self.policy(tenant_id)
        today = datetime.now(UTC).date()
        keys = self._keys(tenant_id, today)
        self._load_spend(tenant_id, today, keys)
        day, month = (int(v or 0) for v in self.client.mget(keys[0], keys[1]))
        reserved = sum(int(v) for v in self.client.hvals(keys[2]))
        spent = {"daily": day, "monthly": month}
        found = [
            PeriodStatus(p, policy.limit(p), spent[p], reserved, policy.warn_ratio) for p in PERIODS
        ]
        for status in found:
            if status.used_ratio is not None:
                BUDGET_GAUGES.record(tenant_id, status.period, status.used_ratio, status.warning)
        return found


def _or_unlimited(limit: int | None) -> int:
    return -1 if limit is None else limit


def _policy_of(row: Tenant) -> TenantPolicy:
    return TenantPolicy(
        daily_micro_usd=row.budget_daily_micro_usd,
        monthly_micro_usd=row.budget_monthly_micro_usd,
        warn_ratio=row.budget_warn_ratio if row.budget_warn_ratio is not None else 0.8,
        objective=row.objective,
        strategy=row.strategy,
    )


def _refusal(period: str, limit: int, spent: int, reserved: int, needed: int) -> str:
    when = "today" if period == "daily" else "this month"
    return (
        f"{period} budget exceeded: the tenant's {period} budget is {format_usd(limit)};"
        f" spent {format_usd(spent)} {when}, {format_usd(reserved)} reserved by jobs in"
        f" flight, and this request may cost up to {format_usd(needed)}"
    )


def spend_from_rollup(session: Session, tenant_id: str, today: date) -> tuple[int, int]:
    """Spend today and this month (UTC), from the ``usage_daily`` rollup."""
    first = month_start(today)
    rows = session.execute(
        select(UsageDaily.day, func.sum(UsageDaily.cost_micro_usd))
        .where(
            UsageDaily.tenant_id == tenant_id,
            UsageDaily.day >= first,
            UsageDaily.day < today + timedelta(days=1),
        )
        .group_by(UsageDaily.day)
    ).all()
    day = sum(int(c or 0) for d, c in rows if d == today)
    return day, sum(int(c or 0) for _, c in rows)


def usd_to_micro(usd: float | None) -> int | None:
    """Dollars (as given by an operator) to integer micro-USD, exactly for decimal input."""
    if usd is None:
        return None
    return int((Decimal(str(usd)) * MICRO_PER_USD).to_integral_value())


def set_budget(session: Session, *, tenant_id: str, policy: TenantPolicy) -> Tenant | None:
    """Store a tenant's budgets, warning ratio and default objective; None if no such tenant."""
    row = session.get(Tenant, tenant_id)
    if row is None:
        return None
    row.budget_daily_micro_usd = policy.daily_micro_usd
    row.budget_monthly_micro_usd = policy.monthly_micro_usd
    row.budget_warn_ratio = policy.warn_ratio
    row.objective = policy.objective
    row.strategy = policy.strategy
    session.flush()
    return row
