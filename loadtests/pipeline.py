"""``switchyard bench pipeline --jobs N --json``: end-to-end job throughput against raw Celery.

Both halves run in one process, one after the other, on the same private Redis
(broker) and Postgres, with the same number of worker processes and threads:

    switchyard   N jobs admitted by the real dispatcher (classify -> bulk insert ->
                 publish), run by ``switchyard worker`` processes (lease, simulator
                 call over HTTP with zero latency, attempt + ledger + result in
                 Postgres). Timed from the start of admission until the last job's
                 ``finished_at``.
    raw Celery   N no-op tasks (one Redis INCR each) published from this process
                 with kombu's pipelined ``Producer.batch`` and run by plain Celery
                 workers (``loadtests._raw``). Timed from the start of publishing
                 until the count reaches N.

Each half first runs a warm-up of ``--warmup`` jobs so that start-up is not timed.
Prints ``jobs_per_s``, ``raw_celery_per_s`` and ``ratio`` (the first over the second).

With ``--floor`` (issue 24) a third half measures the least the mandated stack does for
the same jobs (``loadtests/_floor.py``, the batch floor): raw psycopg on a four-column
table, ids 16 to a Celery message with Switchyard's delivery settings, one claim and
one answer write per message, an httpx call per job to the same simulator, the same
worker processes and threads; no routing, attempts, ledger, guards or ORM. Prints
``floor_per_s``, ``floor_ratio`` (over raw Celery) and ``floor_cpu_s``: a ``ratio``
target above ``floor_ratio`` asks more of Switchyard than its bare stack reaches.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis
from sqlalchemy import func, select

from loadtests import _floor, _raw
from loadtests._bench import (
    Services,
    cluster_cpu,
    cpu_delta,
    cpu_seconds,
    deployments,
    emit,
    jobs,
    private_services,
    running,
    stack_cpu,
    wait_batch,
)
from loadtests._bench import simulator as sim_profile
from loadtests._cluster import Cluster, ClusterSpec
from loadtests._services import libpq_url
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench pipeline", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per process")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--raw-config",
        choices=["defaults", "switchyard"],
        default="defaults",
        help="the baseline's Celery settings: the library's defaults, or Switchyard's "
        "delivery settings (late acks, prefetch 1, task events, priority lists)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the bare mandated stack on the same jobs (loadtests/_floor.py)",
    )
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def _submit(cluster: Cluster, n: int, tag: str) -> str:
    tiers = [t.value for t in ALL_TIERS]
    return cluster.submit_batch([JobRequest.model_validate(j) for j in jobs(n, tiers, tag=tag)])


def measure_switchyard(args: argparse.Namespace, services: Services) -> dict[str, Any]:
    spec = ClusterSpec(
        deployments=deployments(),
        simulator=sim_profile(0.0),
        workers=args.workers,
        concurrency=args.concurrency,
        reconciler=True,
    )
    with running(spec, services) as cluster:
        wait_batch(cluster, _submit(cluster, args.warmup, "warmup"), args.warmup, 120)
        cpu_before = cluster_cpu(cluster, services)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        batch_id = _submit(cluster, args.jobs, "timed")
        admit_s = time.perf_counter() - t0
        wait_batch(cluster, batch_id, args.jobs, args.timeout, poll_s=1.0)  # end: finished_at
        cpu = cpu_delta(cpu_before, cluster_cpu(cluster, services))
        with session_scope(cluster.engine) as session:
            last = session.scalar(select(func.max(Job.finished_at)).where(Job.batch_id == batch_id))
            ok = session.scalar(
                select(func.count()).where(Job.batch_id == batch_id, Job.status == "succeeded")
            )
        assert last is not None
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        seconds = (last - started).total_seconds()
    return {"seconds": seconds, "admit_s": admit_s, "succeeded": ok or 0, "cpu_s": cpu}


def measure_raw(args: argparse.Namespace, services: Services) -> tuple[float, dict[str, float]]:
    client = redis.Redis.from_url(services.redis_url)
    _raw.app.conf.broker_url = services.redis_url
    with _raw.raw_workers(
        services.redis_url,
        processes=args.workers,
        threads=args.concurrency,
        log_dir=services.workdir / "raw-logs",
        like=args.raw_config == "switchyard",
    ) as procs:
        roots = {f"worker-{i}": p.pid for i, p in enumerate(procs)}
        roots["redis"] = services.redis_pid
        client.delete(_raw.DONE_KEY)
        _raw.publish_noops(_raw.app, args.warmup, batched=True)
        _raw.wait_count(client, args.warmup, 120)
        client.delete(_raw.DONE_KEY)
        before = cpu_seconds(roots)
        t0 = time.monotonic()
        _raw.publish_noops(_raw.app, args.jobs, batched=True)
        t1 = _raw.wait_count(client, args.jobs, args.timeout)
        after = cpu_seconds(roots)
    workers = sum(after[k] - before[k] for k in roots if k.startswith("worker"))
    return t1 - t0, {
        "workers": round(workers, 2),
        "redis": round(after["redis"] - before["redis"], 2),
    }


def measure_floor(args: argparse.Namespace, services: Services) -> tuple[float, dict[str, float]]:
    """The batch floor's seconds for ``args.jobs`` jobs (inserted, published, answered, written),
    and the CPU its processes, the simulator, Postgres, Redis and the bench spent on them."""
    spec = ClusterSpec(
        deployments=deployments(), simulator=sim_profile(0.0), workers=0, reconciler=False
    )
    client = redis.Redis.from_url(services.redis_url)
    _floor.app.conf.broker_url = services.redis_url
    prompts = [str(j["prompt"]) for j in jobs(args.jobs, ["fast"], tag="floor")]
    with (
        running(spec, services) as cluster,
        psycopg.connect(libpq_url(services.database_url), autocommit=True) as conn,
        _floor.floor_workers(
            database_url=services.database_url,
            redis_url=services.redis_url,
            simulator_url=f"{cluster.sim_base}/v1",
            log_dir=services.workdir / "floor-logs",
            processes=args.workers,
            threads=args.concurrency,
        ) as floor,
    ):
        conn.execute(_floor.TABLE)
        done = _floor.done_count_key(floor.queue)
        for n in (args.warmup, args.jobs):  # a warm-up, then the timed batch
            client.delete(done)
            before = stack_cpu(cluster, services, floor.pids)
            t0 = time.monotonic()
            _floor.publish_batch(conn, prompts[:n], queue=floor.queue)
            t1 = _raw.wait_count(client, n, args.timeout, key=done)
        after = stack_cpu(cluster, services, floor.pids)
    used = cpu_delta(before, after)
    workers = sum(v for k, v in used.items() if k.startswith("floor-worker"))
    cpu = {k: v for k, v in used.items() if not k.startswith("floor-worker")}
    return t1 - t0, {**cpu, "workers": round(workers, 2)}


def main(argv: list[str]) -> int:
    args = parse(argv)
    with private_services() as services:
        raw_s, raw_cpu = measure_raw(args, services)
        ours = measure_switchyard(args, services)
        floors = _floor_figures(args, services, args.jobs / raw_s) if args.floor else {}
    jobs_per_s = args.jobs / ours["seconds"]
    raw_per_s = args.jobs / raw_s
    return emit(
        {
            "benchmark": "pipeline",
            "jobs": args.jobs,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "raw_config": args.raw_config,
            "succeeded": int(ours["succeeded"]),
            "seconds": round(ours["seconds"], 2),
            "admit_s": round(ours["admit_s"], 2),
            "raw_seconds": round(raw_s, 2),
            "jobs_per_s": round(jobs_per_s, 1),
            "raw_celery_per_s": round(raw_per_s, 1),
            "ratio": round(jobs_per_s / raw_per_s, 3),
            "cpu_s": ours["cpu_s"],
            "raw_cpu_s": raw_cpu,
            **floors,
        }
    )


def _floor_figures(
    args: argparse.Namespace, services: Services, raw_per_s: float
) -> dict[str, Any]:
    floor_s, floor_cpu = measure_floor(args, services)
    floor_per_s = args.jobs / floor_s
    return {
        "floor_seconds": round(floor_s, 2),
        "floor_per_s": round(floor_per_s, 1),
        "floor_ratio": round(floor_per_s / raw_per_s, 3),
        "floor_cpu_s": floor_cpu,
    }
