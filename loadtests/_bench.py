"""Shared pieces of the throughput benchmarks: services, a cluster, percentiles, output.

Every throughput benchmark runs on private servers started for the run (a Postgres
with ``fsync`` on, as production runs it, and a Redis), both on this machine like
the acceptance asks, so a run never touches the shared services and always starts
empty. The cluster is the real one, started through the ``switchyard`` CLI
(``loadtests._cluster``); the simulator answers at once unless told otherwise.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from loadtests._cluster import Cluster, ClusterSpec
from loadtests._services import PrivatePostgres, PrivateRedis
from orchestrator.core.schemas import FINAL_STATUSES
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job

FINAL = [s.value for s in FINAL_STATUSES]


@dataclass(frozen=True)
class Services:
    """The run's private Postgres and Redis, and a scratch directory."""

    database_url: str
    redis_url: str
    workdir: Path
    postgres_pid: int = 0
    redis_pid: int = 0


@contextmanager
def private_services() -> Iterator[Services]:
    """A durable private Postgres and a private Redis, gone when the block ends."""
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    pg, rds = PrivatePostgres(fsync=True), PrivateRedis(workdir / "redis")
    try:
        pg.start()
        rds.start()
        pg_pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        assert rds.proc is not None
        yield Services(pg.url, rds.url, workdir, pg_pid, rds.proc.pid)
    finally:
        rds.kill()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def deployments(
    tiers: Sequence[str] = tuple(t.value for t in ALL_TIERS), *, rpm: int | None = None
) -> list[dict[str, Any]]:
    """One simulator deployment per tier (``bench-<tier>``), optionally rate-limited."""
    out = []
    for tier in tiers:
        deployment: dict[str, Any] = {
            "name": f"bench-{tier}",
            "provider": "simulator",
            "model": f"bench-{tier}",
            "base_url": "${SIMULATOR_URL}",
            "tiers": [tier],
            "input_usd_per_mtok": 0.15,
            "output_usd_per_mtok": 0.6,
            "context_window": 128000,
            "max_output_tokens": 4096,
            "vision": tier == "vision",
        }
        if rpm is not None:
            deployment["rate_limits"] = {"rpm": rpm}
        out.append(deployment)
    return out


def simulator(latency_ms: float = 0.0, rpm: int | None = None) -> dict[str, Any]:
    """Every model answers after exactly ``latency_ms`` (and enforces ``rpm`` if given)."""
    profile: dict[str, Any] = {"latency_p50_ms": latency_ms, "latency_p99_ms": latency_ms}
    if rpm is not None:
        profile["rpm_limit"] = rpm
    return {"default": profile}


@contextmanager
def running(spec: ClusterSpec, services: Services) -> Iterator[Cluster]:
    """A started cluster on the run's services, stopped when the block ends."""
    cluster = Cluster(
        spec,
        workdir=services.workdir / "cluster",
        database_url=services.database_url,
        redis_url=services.redis_url,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def jobs(n: int, tiers: Sequence[str], *, tag: str = "bench") -> list[dict[str, Any]]:
    """``n`` short jobs spread evenly over ``tiers``."""
    return [
        {
            "prompt": f"{tag} {i}: name one reason queues decouple services.",
            "tier": tiers[i % len(tiers)],
            "max_tokens": 16,
            "temperature": 0.7,
        }
        for i in range(n)
    ]


def count_final(cluster: Cluster, batch_id: str) -> int:
    with session_scope(cluster.engine) as session:
        query = select(func.count()).where(Job.batch_id == batch_id, Job.status.in_(FINAL))
        return int(session.scalar(query) or 0)


def wait_batch(
    cluster: Cluster, batch_id: str, n: int, timeout_s: float, *, poll_s: float = 0.2
) -> None:
    """Poll until the batch's ``n`` jobs are final (each poll counts them in Postgres: a
    benchmark that reads its end from ``finished_at`` polls seldom, to load it less)."""
    deadline = time.monotonic() + timeout_s
    while (done := count_final(cluster, batch_id)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {n} jobs final after {timeout_s:.0f}s")
        time.sleep(poll_s)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


def emit(result: dict[str, Any]) -> int:
    """Print the result as one JSON object; exit status 0."""
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far), for every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and all its descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            total += table.get(pid, (0, 0.0))[1]
            todo.extend(children.get(pid, []))
        out[name] = total
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def stack_cpu(cluster: Cluster, services: Services, pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of the processes in ``pids`` (a floor's, a peer's) and of what
    serves them: the cluster's simulator, Postgres, Redis, and this process (``bench``)."""
    roots = dict(pids, postgres=services.postgres_pid, redis=services.redis_pid)
    simulator = [proc.pid for name, proc in cluster.supervisor.children if name == "simulator"]
    roots.update(simulator=simulator[0])
    return {**cpu_seconds(roots), "bench": sum(os.times()[:2])}


def cluster_cpu(cluster: Cluster, services: Services) -> dict[str, float]:
    """CPU seconds so far of each part of a benchmark run (workers summed), and of this process."""
    roots = {name: proc.pid for name, proc in cluster.supervisor.children}
    roots.update(postgres=services.postgres_pid, redis=services.redis_pid)
    used = cpu_seconds(roots)
    out: dict[str, float] = {"bench": sum(os.times()[:2])}
    for name, seconds in used.items():
        key = name
        if name.startswith(("worker", "interactive-worker")):  # spawned as NAME-N
            key = name.rsplit("-", 1)[0] + "s"
        out[key] = out.get(key, 0.0) + seconds
    return out
