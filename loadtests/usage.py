"""``switchyard bench usage --rows 1000000 --json``: GET /v1/usage on a million-row ledger.

In a private Postgres schema (dropped afterwards) on the shared server:

    load       --rows ledger rows for one tenant over --days days, 10 deployments,
               in one bulk INSERT ... SELECT; the rollup trigger (migration 0006) fires
               as in production
    baseline   the same report computed straight from the ledger: GROUP BY tier, day
               over the tenant's rows (index on tenant_id, created_at)
    query      ``orchestrator.costs.usage_reports.usage_rows`` (tier, day) on the rollup
    api        GET /v1/usage?group_by=tier,day&since=... through the real API
               (uvicorn in a thread, real HTTP, budgets read from Redis)

Each is timed over --repeat calls after two warm-up calls; p50/p99/max in ms, and
whether the three answers agree to the micro-dollar. The FK constraints of
``cost_ledger`` are dropped in the private schema only, so the ledger can be
loaded without a million jobs and attempts; the trigger that keeps the rollup
is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import redis
from sqlalchemy import Engine, func, select, text

from loadtests._serve import serving
from loadtests._services import private_schema
from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.costs.usage_reports import Window, usage_rows
from orchestrator.store import migrate
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import LedgerEntry

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COLUMNS = (
    "tenant_id, job_id, attempt_id, batch_id, tier, deployment, provider, model,"
    " input_tokens, output_tokens, cost_micro_usd, created_at"
)


def load_ledger(engine: Engine, tenant_id: str, rows: int, days: int) -> float:
    """Bulk-insert ``rows`` ledger rows spread over ``days`` (one INSERT ... SELECT
    generate_series, so the rollup trigger sees them as one statement, like a COPY);
    returns the seconds it took."""
    deployments = load_catalog(Settings()).deployments
    values = ", ".join(
        f"({i}, '{d.tiers[0].value}', '{d.name}', '{d.provider}', '{d.model}')"
        for i, d in enumerate(deployments)
    )
    with engine.begin() as conn:
        fks = conn.execute(
            text(
                "SELECT conname FROM pg_constraint WHERE contype = 'f'"
                " AND conrelid = 'cost_ledger'::regclass"
            )
        ).scalars()
        for fk in list(fks):
            conn.execute(text(f'ALTER TABLE cost_ledger DROP CONSTRAINT "{fk}"'))
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.8)"))
        conn.execute(
            text(
                f"INSERT INTO cost_ledger ({COLUMNS})"
                " SELECT :tenant, 'job_b' || g, 'att_b' || g, NULL, d.tier, d.name, d.provider,"
                " d.model, 10 + (random() * 2000)::int, 1 + (random() * 800)::int,"
                " 1 + (random() * 5000)::bigint,"
                " now() - random() * make_interval(days => :days - 1)"
                f" FROM generate_series(1, :rows) g JOIN (VALUES {values})"
                " AS d(i, tier, name, provider, model)"
                f" ON d.i = g % {len(deployments)}"
            ),
            {"tenant": tenant_id, "rows": rows, "days": days},
        )
    loaded = time.perf_counter() - began
    with engine.begin() as conn:
        conn.execute(text("ANALYZE cost_ledger"))
        conn.execute(text("ANALYZE usage_daily"))
    return loaded


def timed(fn: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    fn()
    fn()
    samples, answer = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        answer = fn()
        samples.append((time.perf_counter() - began) * 1000)
    ordered = sorted(samples)
    figures = {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "max_ms": round(ordered[-1], 2),
    }
    return figures, answer


def raw_report(engine: Engine, tenant_id: str, since: date) -> dict[tuple[str, str], int]:
    day = func.date(func.timezone("UTC", LedgerEntry.created_at))
    query = (
        select(LedgerEntry.tier, day, func.sum(LedgerEntry.cost_micro_usd))
        .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.created_at >= since)
        .group_by(LedgerEntry.tier, day)
    )
    with engine.connect() as conn:
        return {(t, d.isoformat()): int(c) for t, d, c in conn.execute(query)}


def measure(url: str, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    engine = get_engine(url)
    migrate.upgrade(url)
    settings = Settings(
        state_dir=f"/tmp/sybench-{secrets.token_hex(3)}",
        database_url=url,
        redis_url=args.redis_url,
        redis_key_prefix=prefix,
        tenant_rate_limit_rpm=0,
    )
    key = ensure_tenant_key(engine, state_dir=settings.state_path, tenant="bench-usage")
    with session_scope(engine) as session:
        tenant_id = str(
            session.execute(text("SELECT id FROM tenants WHERE name='bench-usage'")).scalar()
        )
    load_s = load_ledger(engine, tenant_id, args.rows, args.days)
    since = datetime.now(UTC).date() - timedelta(days=args.days - 1)
    window = Window(since, datetime.now(UTC).date())

    def query() -> dict[tuple[str, str], int]:
        with session_scope(engine) as session:
            rows = usage_rows(session, tenant_id=tenant_id, group_by=("tier", "day"), window=window)
        return {(r["tier"], r["day"]): r["cost_micro_usd"] for r in rows}

    baseline, expected = timed(
        lambda: raw_report(engine, tenant_id, since), max(5, args.repeat // 10)
    )
    rolled, got = timed(query, args.repeat)
    from orchestrator.api.app import create_app

    with (
        serving(create_app(settings)) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client,
    ):
        params = {"group_by": "tier,day", "since": since.isoformat()}

        def call() -> dict[tuple[str, str], int]:
            body = client.get("/v1/usage", params=params).raise_for_status().json()
            return {(r["tier"], r["day"]): r["cost_micro_usd"] for r in body["data"]}

        api, via_api = timed(call, args.repeat)
    with session_scope(engine) as session:
        rollup_rows = int(session.execute(text("SELECT count(*) FROM usage_daily")).scalar() or 0)
    return {
        "benchmark": "usage",
        "rows": args.rows,
        "days": args.days,
        "groups": len(got),
        "rollup_rows": rollup_rows,
        "load_s": round(load_s, 1),
        "baseline_raw_ledger": baseline,
        "query_rollup": rolled,
        "api_get_usage": api,
        "answers_agree": expected == got == via_api,
        "p99_ratio_api_to_baseline": round(api["p99_ms"] / (baseline["p99_ms"] or 1e-9), 4),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchyard bench usage")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--database-url", default=os.environ.get("SWITCHYARD_TEST_DATABASE_URL", DEFAULT_DB)
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SWITCHYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--json", action="store_true", help="(always JSON; accepted for symmetry)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("bench usage needs Postgres (--database-url postgresql+psycopg://...)")
    prefix = f"sybench-{secrets.token_hex(4)}:"
    try:
        with private_schema(args.database_url, prefix="sybench") as url:
            result = measure(url, args, prefix)
    finally:
        client = redis.Redis.from_url(args.redis_url)
        for stale in client.scan_iter(match=f"{prefix}*"):
            client.delete(stale)
        client.close()
    print(json.dumps(result, indent=1))
    return 0 if result["answers_agree"] else 1
