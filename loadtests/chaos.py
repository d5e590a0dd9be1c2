"""``switchyard bench chaos --jobs N --json``: no job lost while workers, Redis and Postgres die.

One run, on this machine, with nothing shared:

    private Postgres (initdb) and private Redis, each on its own port
    the simulator: every model limited to --rpm requests a minute, injecting
        20% 5xx (500, 503), 5% 429 and 2% timeouts, latency p50 200 ms / p99 1 s
    the API, --workers worker processes (every tier queue), the reconciler

The batch is POSTed to the API; then, until every job is final, a random worker
that has been up for at least ``MIN_AGE_S`` is killed with SIGKILL every
--kill-every seconds (and replaced, as a process supervisor would), Redis is
killed and restarted empty once, and Postgres is crash-restarted (``pg_ctl
restart -m immediate``) once. One worker is never killed, so that a worker that
stopped consuming after the Redis restart would show (``survivor_jobs_after_redis_restart``
counts what it finished after). The database is then audited and the simulator
asked what it saw.

Prints JSON: ``submitted``, ``succeeded``, ``failed``, ``lost`` (not final when
the run ended), ``duplicate_successes`` (jobs with more than one answered call
recorded), ``ledger_mismatches``, ``max_provider_rpm`` (the simulator's busiest
60 s for any one model) and ``limit_rpm``, ``seconds``, and what happened along
the way. ``ideal_seconds`` is the baseline: the calls made, at the full rate
limit of every deployment, with nothing failing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from loadtests._cluster import Cluster, ClusterSpec
from loadtests._services import PrivatePostgres, PrivateRedis
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job

ERROR_RATES = {"500": 0.10, "503": 0.10, "429": 0.05, "timeout": 0.02}
MIN_AGE_S = 8.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench chaos", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rpm", type=int, default=120, help="per-deployment limit")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--redis-restart-at", type=float, help="seconds in (default: 25%%)")
    parser.add_argument("--postgres-restart-at", type=float, help="seconds in (default: 50%%)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="give up after (s)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def catalog(rpm: int) -> list[dict[str, Any]]:
    """Two deployments per tier, a cheaper and a stronger one, each limited to ``rpm``."""
    deployments = []
    for tier in ALL_TIERS:
        for rank, price in ((1, 0.5), (2, 2.0)):
            deployments.append(
                {
                    "name": f"chaos-{tier.value}-{rank}",
                    "provider": "simulator",
                    "model": f"chaos-{tier.value}-{rank}",
                    "base_url": "${SIMULATOR_URL}",
                    "tiers": [tier.value],
                    "input_usd_per_mtok": price,
                    "output_usd_per_mtok": price * 4,
                    "context_window": 128000,
                    "max_output_tokens": 4096,
                    "vision": tier.value == "vision",
                    "strength": rank,
                    "rate_limits": {"rpm": rpm},
                }
            )
    return deployments


def simulator(rpm: int) -> dict[str, Any]:
    profile = {
        "latency_p50_ms": 200,
        "latency_p99_ms": 1000,
        "error_rates": ERROR_RATES,
        "timeout_s": 3,
        "rpm_limit": rpm,
    }
    return {"default": profile}


def batch(n: int) -> list[dict[str, Any]]:
    tiers = [t.value for t in ALL_TIERS]
    return [
        {
            "prompt": f"Chaos job {i}: summarise why queues need idempotent consumers.",
            "tier": tiers[i % len(tiers)],
            "max_tokens": 64,
            "custom_id": f"chaos-{i}",
        }
        for i in range(n)
    ]


class Chaos:
    """The schedule of disasters, run from the main loop while the batch drains."""

    def __init__(
        self, args: argparse.Namespace, cluster: Cluster, pg: PrivatePostgres, rds: PrivateRedis
    ) -> None:
        estimate_s = args.jobs * 1.4 / (len(ALL_TIERS) * args.rpm / 60)
        self.args, self.cluster, self.pg, self.redis = args, cluster, pg, rds
        self.rng = random.Random(args.seed)
        self.redis_at = (
            args.redis_restart_at if args.redis_restart_at is not None else estimate_s / 4
        )
        self.pg_at = (
            args.postgres_restart_at if args.postgres_restart_at is not None else estimate_s / 2
        )
        self.next_kill = args.kill_every
        # One worker is never killed: if it stopped consuming after Redis came back
        # (celery #8030), the others would hide it; its own count shows it.
        self.survivor = cluster.workers[0] if len(cluster.workers) > 1 else None
        self.born = {w: time.monotonic() for w in cluster.workers if w is not self.survivor}
        self.redis_back_at: datetime | None = None
        self.events: dict[str, int] = {
            "worker_kills": 0,
            "redis_restarts": 0,
            "postgres_restarts": 0,
        }

    def tick(self, elapsed_s: float) -> None:
        if elapsed_s >= self.next_kill and self._kill_one():
            self.next_kill = elapsed_s + self.args.kill_every
        if not self.events["redis_restarts"] and elapsed_s >= self.redis_at:
            self.redis.restart_empty()
            self.redis_back_at = datetime.now(UTC)
            self.events["redis_restarts"] += 1
        if not self.events["postgres_restarts"] and elapsed_s >= self.pg_at:
            self.pg.restart()
            self.events["postgres_restarts"] += 1

    def survivor_jobs(self) -> int | None:
        """Jobs the never-killed worker finished after Redis came back (None: no survivor)."""
        if self.survivor is None or self.redis_back_at is None:
            return None
        owner = f"%:{self.survivor.pid}:%"
        query = select(func.count()).where(
            Job.lease_owner.like(owner), Job.finished_at > self.redis_back_at
        )
        with session_scope(self.cluster.engine) as session:
            return int(session.scalar(query) or 0)

    def _kill_one(self) -> bool:
        """SIGKILL a worker that has been up for a while, and start its replacement.

        Only workers older than ``MIN_AGE_S`` are candidates: on a loaded machine a
        worker can take several seconds to start consuming, and killing only
        newborns would test nothing but start-up.
        """
        now = time.monotonic()
        grown = [w for w, born in self.born.items() if now - born >= MIN_AGE_S]
        if not grown:
            return False
        victim = self.rng.choice(grown)
        self.cluster.kill_worker(victim)
        del self.born[victim]
        self.born[self.cluster.spawn_worker()] = time.monotonic()
        self.events["worker_kills"] += 1
        return True


def submit(cluster: Cluster, n: int) -> list[str]:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    response = httpx.post(
        f"{cluster.api_url}/v1/batches", json=batch(n), headers=headers, timeout=300
    )
    response.raise_for_status()
    return cluster.batch_job_ids(response.json()["id"])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pg, rds = PrivatePostgres(), PrivateRedis(workdir / "redis")
    pg.start()
    rds.start()
    spec = ClusterSpec(
        deployments=catalog(args.rpm),
        simulator=simulator(args.rpm),
        workers=args.workers,
        concurrency=args.concurrency,
        api=True,
        knobs={
            "job_lease_s": "10",
            "reconcile_interval_s": "1",
            "reconcile_grace_s": "10",
            "provider_timeout_s": "10",
        },
    )
    cluster = Cluster(spec, workdir=workdir / "cluster", database_url=pg.url, redis_url=rds.url)
    try:
        cluster.start()
        started = time.monotonic()
        ids = submit(cluster, args.jobs)
        chaos = Chaos(args, cluster, pg, rds)
        statuses = wait(cluster, ids, chaos, started, args.timeout)
        seconds = time.monotonic() - started
        events: dict[str, Any] = {
            **chaos.events,
            "survivor_jobs_after_redis_restart": chaos.survivor_jobs(),
        }
        return report(args, cluster, ids, statuses, events, seconds)
    finally:
        cluster.stop()
        rds.kill()
        pg.stop()


def wait(
    cluster: Cluster, ids: list[str], chaos: Chaos, started: float, timeout_s: float
) -> dict[str, str]:
    """Run the chaos until every job is final (or time is up); the last statuses read."""
    statuses: dict[str, str] = {}
    while time.monotonic() - started < timeout_s:
        chaos.tick(time.monotonic() - started)
        try:
            statuses = cluster.statuses(ids)
        except Exception:  # Postgres is restarting: ask again
            time.sleep(0.5)
            continue
        if len(statuses) == len(ids) and all(s in FINAL for s in statuses.values()):
            break
        time.sleep(0.5)
    return statuses


FINAL = {"succeeded", "failed", "cancelled", "expired"}


def report(
    args: argparse.Namespace,
    cluster: Cluster,
    ids: list[str],
    statuses: dict[str, str],
    events: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    audit = cluster.audit(ids)
    stats = cluster.sim_stats()
    peak = max((m["max_received_per_60s"] for m in stats["models"].values()), default=0)
    used = len([m for m in stats["models"].values() if m["received"]])
    total = stats["total"]
    return {
        "submitted": audit.submitted,
        "succeeded": audit.by_status.get("succeeded", 0),
        "failed": audit.by_status.get("failed", 0),
        "expired": audit.by_status.get("expired", 0),
        "lost": audit.lost,
        "duplicate_successes": audit.duplicate_successes,
        "ledger_mismatches": audit.ledger_mismatches,
        "max_provider_rpm": peak,
        "limit_rpm": args.rpm,
        "seconds": round(seconds, 1),
        "ideal_seconds": round(total["received"] / (max(1, used) * args.rpm / 60), 1),
        **events,
        "failed_errors": failed_errors(cluster, ids),
        "attempts": audit.attempts,
        "attempts_by_outcome": audit.attempts_by_outcome,
        "ledger_rows": audit.ledger_rows,
        "provider_received": total["received"],
        "provider_served": total["served"],
        "provider_errors": total["errors"],
        "unrecorded_served_calls": total["served"] - audit.ledger_rows,
        "workers": args.workers,
        "concurrency": args.concurrency,
    }


def failed_errors(cluster: Cluster, ids: list[str]) -> dict[str, int]:
    """The most common errors of the jobs that failed (first 120 characters)."""
    query = select(Job.error).where(Job.id.in_(ids), Job.status != "succeeded")
    with session_scope(cluster.engine) as session:
        errors = Counter((e or "")[:120] for e in session.scalars(query))
    return dict(errors.most_common(5))


def main(argv: list[str]) -> int:
    args = parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-chaos-"))
    result = run(args, workdir)
    ok = not (result["lost"] or result["duplicate_successes"] or result["ledger_mismatches"])
    ok = ok and result["max_provider_rpm"] <= result["limit_rpm"]
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:  # keep the processes' logs for the post-mortem
        result["logs"] = str(workdir / "cluster" / "logs")
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if ok else 1
