"""``switchyard bench cascade --json``: does a cascade cost what the ledger predicts?

One run, on this machine, with nothing shared:

    private Postgres (initdb) and private Redis, the simulator at zero latency
    one tier (``fast``) with a weak deployment (0.15 / 0.60 USD per million tokens)
        and a strong one (2.00 / 8.00); the weak model refuses ``--fail-rate`` of
        the inputs it sees (spread evenly, ``fault_draw: even``; ``--fault-draw hash``
        draws them instead, so the measured rate is a sample), the strong never
    the reconciler and ``--workers`` worker processes on the ``fast`` queue

The same ``--jobs`` prompts run three times through the real workers, each as a
batch admitted by the dispatcher:

    cascade        ``strategy: cascade``: weak first, a refusal escalates to strong
    always weak    every job pinned to the weak deployment (baseline)
    always strong  every job pinned to the strong deployment (baseline)

Costs are read from the cost ledger. The prediction is ``always_weak +
fail_rate * always_strong`` per job (every cascade job pays one weak call, and
the refused ones one strong call too); ``prediction_error_pct`` is how far the
cascade's measured cost per job is from it. Also printed: the same prediction
with the measured escalation rate, the jobs served, and the ledger audit
(``ledger_mismatches``: a job whose cost is not the sum of its ledger rows, a
billed attempt without exactly one row).

Prints JSON: ``jobs``, ``served``, ``escalation_rate``, ``cost_per_job_usd``,
``always_strong_cost_per_job_usd``, ``always_weak_cost_per_job_usd``,
``predicted_cost_per_job_usd``, ``prediction_error_pct``, ``savings_vs_strong_pct``.
Exit status 0 when every job was served, the ledger audit is clean and the
prediction holds within 2% (with ``--fault-draw hash`` the measured rate, and so
the cost, is a sample: compare ``prediction_error_at_measured_rate_pct``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from loadtests._cluster import Cluster, ClusterSpec
from loadtests._services import PrivatePostgres, PrivateRedis
from orchestrator.core.schemas import JobRequest
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, LedgerEntry

WEAK, STRONG = "cascade-weak", "cascade-strong"
MICRO = 1_000_000
TOLERANCE_PCT = 2.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench cascade", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--fail-rate", type=float, default=0.3, help="weak model's refusals")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--fault-draw",
        choices=("even", "hash"),
        default="even",
        help="even: exactly --fail-rate of the inputs; hash: a sample of it",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="per run (s)")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def deployment(name: str, input_price: float, output_price: float, strength: int) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "simulator",
        "model": name,
        "base_url": "${SIMULATOR_URL}",
        "tiers": ["fast"],
        "input_usd_per_mtok": input_price,
        "output_usd_per_mtok": output_price,
        "context_window": 128000,
        "max_output_tokens": 4096,
        "strength": strength,
    }


def requests(n: int, max_tokens: int, **extra: Any) -> list[JobRequest]:
    prompts = [f"Customer {i} asks: where is my parcel? Draft a short reply." for i in range(n)]
    return [
        JobRequest(prompt=p, tier="fast", max_tokens=max_tokens, custom_id=str(i), **extra)
        for i, p in enumerate(prompts)
    ]


def run_batch(cluster: Cluster, batch: list[JobRequest], timeout_s: float) -> dict[str, Any]:
    """Admit one batch, wait for it, and read its jobs' outcome and cost from the database."""
    started = time.monotonic()
    ids = cluster.submit(batch)
    statuses = cluster.wait_final(ids, timeout_s)
    seconds = time.monotonic() - started
    with session_scope(cluster.engine) as session:
        deployments = Counter(
            session.scalars(
                select(Job.deployment).where(Job.id.in_(ids), Job.status == "succeeded")
            )
        )
        ledger = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.cost_micro_usd), 0)).where(
                LedgerEntry.job_id.in_(ids)
            )
        )
    audit = cluster.audit(ids)
    return {
        "ids": ids,
        "served": sum(1 for s in statuses.values() if s == "succeeded"),
        "deployments": dict(deployments),
        "cost_micro_usd": int(ledger or 0),
        "ledger_mismatches": audit.ledger_mismatches,
        "seconds": round(seconds, 1),
    }


def measure(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    n = args.jobs
    cascade = run_batch(cluster, requests(n, args.max_tokens, strategy="cascade"), args.timeout)
    weak = run_batch(cluster, requests(n, args.max_tokens, model=WEAK), args.timeout)
    strong = run_batch(cluster, requests(n, args.max_tokens, model=STRONG), args.timeout)
    per_job = {
        k: r["cost_micro_usd"] / n / MICRO for k, r in (("c", cascade), ("w", weak), ("s", strong))
    }
    escalation = cascade["deployments"].get(STRONG, 0) / n
    predicted = per_job["w"] + args.fail_rate * per_job["s"]
    measured_rate_prediction = per_job["w"] + escalation * per_job["s"]
    return {
        "jobs": n,
        "served": cascade["served"],
        "escalation_rate": round(escalation, 4),
        "configured_fail_rate": args.fail_rate,
        "cost_per_job_usd": round(per_job["c"], 9),
        "always_strong_cost_per_job_usd": round(per_job["s"], 9),
        "always_weak_cost_per_job_usd": round(per_job["w"], 9),
        "predicted_cost_per_job_usd": round(predicted, 9),
        "prediction_error_pct": round(100 * (per_job["c"] - predicted) / predicted, 3),
        "prediction_error_at_measured_rate_pct": round(
            100 * (per_job["c"] - measured_rate_prediction) / measured_rate_prediction, 3
        ),
        "savings_vs_strong_pct": round(100 * (1 - per_job["c"] / per_job["s"]), 1),
        "served_by": cascade["deployments"],
        "ledger_mismatches": sum(r["ledger_mismatches"] for r in (cascade, weak, strong)),
        "seconds": {
            "cascade": cascade["seconds"],
            "weak": weak["seconds"],
            "strong": strong["seconds"],
        },
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pg, rds = PrivatePostgres(), PrivateRedis(workdir / "redis")
    pg.start()
    rds.start()
    faults = {"refusal_rate": args.fail_rate, "fault_draw": args.fault_draw}
    spec = ClusterSpec(
        deployments=[deployment(WEAK, 0.15, 0.60, 1), deployment(STRONG, 2.00, 8.00, 2)],
        simulator={"models": {WEAK: faults}},
        workers=args.workers,
        tiers=("fast",),
        concurrency=args.concurrency,
    )
    cluster = Cluster(spec, workdir=workdir / "cluster", database_url=pg.url, redis_url=rds.url)
    try:
        cluster.start()
        return measure(args, cluster)
    finally:
        cluster.stop()
        rds.kill()
        pg.stop()


def main(argv: list[str]) -> int:
    args = parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-cascade-"))
    result = run(args, workdir)
    ok = result["served"] == result["jobs"] and not result["ledger_mismatches"]
    ok = ok and abs(result["prediction_error_pct"]) <= TOLERANCE_PCT
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result["logs"] = str(workdir / "cluster" / "logs")
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if ok else 1
