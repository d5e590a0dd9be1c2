"""Spend reports: the ``usage_daily`` rollup grouped by tier, provider, model, day or kind.

The rollup is kept by database triggers on every ledger and attempt insert
(migration 0006), so a report over a month reads a few hundred rollup rows
whatever the size of the ledger. Days are UTC; ``since`` and ``until`` are
inclusive dates (a datetime counts as its UTC date). Kinds:

    billed     a provider call that answered (the ledger row's cost)
    cache_hit  an answer from the response cache (cost 0)
    unbilled   a failed call (cost 0; it is in the attempts, not the ledger)

A batch's summary reads its ledger rows by ``batch_id`` (indexed), so it agrees
to the micro-dollar with the sum over its jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from orchestrator.core.errors import ValidationFailed
from orchestrator.store.models import Job, LedgerEntry, UsageDaily

GROUPS = ("tier", "provider", "model", "deployment", "day", "kind")
SUMS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")


def parse_group_by(value: str | None) -> tuple[str, ...]:
    """``tier,day`` -> ("tier", "day"); a 422 naming ``group_by`` for anything else."""
    if not value:
        return ()
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        raise ValidationFailed(
            "group_by", f"cannot group by {unknown[0]!r}; choose from {', '.join(GROUPS)}"
        )
    return tuple(dict.fromkeys(names))


def parse_day(value: str | None, field: str, default: date) -> date:
    """A date (``2026-11-27``) or datetime (its UTC date); a 422 naming ``field`` otherwise."""
    if value is None or value == "":
        return default
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(field, f"{value!r} is not an ISO date or datetime") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


@dataclass(frozen=True)
class Window:
    """Inclusive UTC days a report covers."""

    since: date
    until: date

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Window:
        today = datetime.now(UTC).date()
        window = cls(
            parse_day(since, "since", today.replace(day=1)), parse_day(until, "until", today)
        )
        if window.until < window.since:
            raise ValidationFailed("until", f"until {window.until} is before since {window.since}")
        return window


def _measures() -> list[Any]:
    kind = UsageDaily.kind
    return [
        func.sum(UsageDaily.calls).label("calls"),
        func.sum(case((kind == "billed", UsageDaily.calls), else_=0)).label("billed_calls"),
        func.sum(case((kind == "cache_hit", UsageDaily.calls), else_=0)).label("cache_hits"),
        func.sum(case((kind == "unbilled", UsageDaily.calls), else_=0)).label("unbilled_attempts"),
        *(func.sum(getattr(UsageDaily, c)).label(c) for c in SUMS),
        func.sum(UsageDaily.cost_micro_usd).label("cost_micro_usd"),
    ]


def usage_rows(
    session: Session, *, tenant_id: str, group_by: tuple[str, ...], window: Window
) -> list[dict[str, Any]]:
    """One dict per group: the group's keys, call counts by kind, tokens and cost."""
    keys = [getattr(UsageDaily, g).label(g) for g in group_by]
    query = (
        select(*keys, *_measures())
        .where(
            UsageDaily.tenant_id == tenant_id,
            UsageDaily.day >= window.since,
            UsageDaily.day <= window.until,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    rows = []
    for row in session.execute(query).mappings():
        out = {g: _plain(row[g]) for g in group_by}
        out.update({k: int(row[k] or 0) for k in row if k not in group_by})
        rows.append(out)
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The sums of every measure over all groups."""
    measures = ("calls", "billed_calls", "cache_hits", "unbilled_attempts", *SUMS)
    return {m: sum(r.get(m, 0) for r in rows) for m in (*measures, "cost_micro_usd")}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def batch_cost(session: Session, *, tenant_id: str, batch_id: str) -> dict[str, Any]:
    """A batch's spend from its ledger rows: total, by tier and deployment, cache hits."""
    rows = session.execute(
        select(
            LedgerEntry.tier,
            LedgerEntry.deployment,
            LedgerEntry.cache_hit,
            func.count(),
            func.sum(LedgerEntry.cost_micro_usd),
        )
        .where(LedgerEntry.batch_id == batch_id, LedgerEntry.tenant_id == tenant_id)
        .group_by(LedgerEntry.tier, LedgerEntry.deployment, LedgerEntry.cache_hit)
    ).all()
    by_tier: dict[str, int] = {}
    by_deployment: dict[str, int] = {}
    billed = hits = 0
    for tier, deployment, cache_hit, count, cost in rows:
        by_tier[tier] = by_tier.get(tier, 0) + int(cost or 0)
        by_deployment[deployment] = by_deployment.get(deployment, 0) + int(cost or 0)
        hits += int(count) if cache_hit else 0
        billed += 0 if cache_hit else int(count)
    jobs_total = session.scalar(
        select(func.coalesce(func.sum(Job.cost_micro_usd), 0)).where(
            Job.batch_id == batch_id, Job.tenant_id == tenant_id
        )
    )
    return {
        "ledger_micro_usd": sum(by_tier.values()),
        "jobs_micro_usd": int(jobs_total or 0),
        "billed_calls": billed,
        "cache_hits": hits,
        "by_tier": by_tier,
        "by_deployment": by_deployment,
    }
