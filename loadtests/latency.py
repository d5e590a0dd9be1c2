"""``switchyard bench latency --latency-ms L --concurrency C --json``: one worker, slow provider.

An LLM call is mostly waiting. One ``switchyard worker`` process (threads pool,
``C`` threads) runs ``--rounds`` x C fast-tier jobs against a simulator that
answers every call after exactly L ms. If the worker kept all C calls in flight
all the time it would finish ``ideal_per_s = C * 1000 / L`` jobs a second.

``jobs_per_s`` is the steady rate, read from the jobs' ``finished_at`` in
Postgres: the first and the last C jobs to finish (the ramp up and the drain)
are left out, and the rest are divided by the time between them.
``efficiency = jobs_per_s / ideal_per_s``. ``worker_rss_mb`` is the largest
resident set of the worker process, sampled every 0.2 s through the run.
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from loadtests._bench import (
    Services,
    cluster_cpu,
    cpu_delta,
    deployments,
    emit,
    jobs,
    private_services,
    running,
    wait_batch,
)
from loadtests._bench import simulator as sim_profile
from loadtests._cluster import Cluster, ClusterSpec
from orchestrator.core.schemas import JobRequest
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench latency", description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=10, help="jobs = rounds x concurrency")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def rss_mb(pid: int) -> float:
    """Resident set of one process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """The largest RSS of ``pid`` seen while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.max_mb = pid, 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            try:
                self.max_mb = max(self.max_mb, rss_mb(self.pid))
            except OSError:
                return


def steady_rate(finished: list[datetime], edge: int) -> float:
    """Jobs a second between the ``edge``-th and the ``edge``-th-from-last finish."""
    times = sorted(t.timestamp() for t in finished)
    edge = min(edge, max(0, (len(times) - 2) // 4))
    first, last = times[edge], times[len(times) - 1 - edge]
    return (len(times) - 1 - 2 * edge) / (last - first)


def run(
    args: argparse.Namespace, cluster: Cluster, services: Services
) -> tuple[float, float, int, dict[str, float]]:
    warm = [JobRequest.model_validate(j) for j in jobs(args.concurrency, ["fast"], tag="warm")]
    wait_batch(cluster, cluster.submit_batch(warm), len(warm), args.timeout)
    sampler = RssSampler(cluster.workers[0].pid)
    sampler.start()
    before = cluster_cpu(cluster, services)
    n = args.rounds * args.concurrency
    batch_id = cluster.submit_batch([JobRequest.model_validate(j) for j in jobs(n, ["fast"])])
    wait_batch(cluster, batch_id, n, args.timeout)
    sampler.stopped.set()
    cpu = cpu_delta(before, cluster_cpu(cluster, services))
    with session_scope(cluster.engine) as session:
        query = select(Job.finished_at, Job.status).where(Job.batch_id == batch_id)
        rows = session.execute(query).all()
    finished = [f for f, _ in rows if f is not None]
    ok = sum(1 for _, s in rows if s == "succeeded")
    return steady_rate(finished, args.concurrency), sampler.max_mb, ok, cpu


def main(argv: list[str]) -> int:
    args = parse(argv)
    spec = ClusterSpec(
        deployments=deployments(["fast"]),
        simulator=sim_profile(args.latency_ms),
        workers=1,
        tiers=("fast",),
        concurrency=args.concurrency,
        reconciler=True,
    )
    started = time.monotonic()
    with private_services() as services, running(spec, services) as cluster:
        jobs_per_s, rss, ok, cpu = run(args, cluster, services)
    ideal = args.concurrency * 1000 / args.latency_ms
    return emit(
        {
            "benchmark": "latency",
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "jobs": args.rounds * args.concurrency,
            "succeeded": ok,
            "jobs_per_s": round(jobs_per_s, 1),
            "ideal_per_s": round(ideal, 1),
            "efficiency": round(jobs_per_s / ideal, 3),
            "worker_rss_mb": round(rss, 1),
            "wall_s": round(time.monotonic() - started, 1),
            "cpu_s": cpu,
        }
    )
