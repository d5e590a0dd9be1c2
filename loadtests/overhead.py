"""``switchyard bench overhead --rps R --seconds S [--background-jobs B] --json``: added latency.

What does going through Switchyard add to one chat completion? Two phases of S
seconds each, open loop (request i is sent at ``i / R`` s whether or not the
earlier ones answered), against a simulator that answers at once:

    direct      ``POST /v1/chat/completions`` to the simulator itself (the baseline)
    cluster     the same body to Switchyard's OpenAI-compatible endpoint with
                ``model: "tier:fast"``: API -> dispatcher -> Postgres -> fast queue
                -> worker (lease, call, ledger) -> completion event -> API -> client

``p50_added_ms`` and ``p99_added_ms`` are the cluster's percentile minus the
direct one. The fast tier runs as compose ships it: a worker taking every message
and ``--interactive-workers`` (default 1) on the interactive lane (``switchyard
worker --lane interactive``, which takes interactive messages only).

With ``--background-jobs B`` a batch of B fast-tier jobs is queued first and the
two phases run side by side (two open loops at R each), so both see the same
moment of the drain on the same workers: interactive requests ride the top
priority step of the same queue, which the lane's worker alone fetches, so they
should not wait behind the batch. ``background_left`` is how many batch jobs were
still waiting when the phases ended (it must be above zero for the run to mean
anything: a batch that drained early left part of the run unloaded).
``interactive_stages`` splits the interactive jobs' time, from their rows:
``queued`` from the job's row written to its claim by a worker, ``running`` from
the claim to the final write (warm-up requests included).

With ``--floor`` (quiet cluster only) two more phases measure the least that the
mandated stack adds on this machine in this run (``loadtests/_floor.py``): a bare
FastAPI -> Postgres insert -> Celery -> threads worker (claim, call, event, write)
path, ``floor_p50_added_ms`` / ``floor_p99_added_ms``; the same with the answer
written before the completion event, as a design must that never tells a client of an
answer it has not recorded (Switchyard does), ``floor_durable_*``; and the same without
its database, ``floor_no_db_*``. Each runs against a direct phase measured just before
it. ``*cpu_ms_per_request`` is what a request cost every process (API, workers,
Postgres, Redis, simulator, this client), warm-up included.

With ``--peer litellm`` the proxy a user would run instead is measured in the same
run, right after the cluster phase: a LiteLLM proxy (``loadtests/_peer.py``: one
process, no database, a generated config pointing at the same simulator), the same
open loop and body, against a direct phase measured just before it:
``peer_p50_added_ms`` / ``peer_p99_added_ms``, ``peer_cpu_ms_per_request`` (as the
floor's), and ``p50_ratio_to_peer``, Switchyard's p50 added over the peer's. Without
the ``peers`` extra installed it exits 2 with the install command.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from loadtests._bench import (
    Services,
    cluster_cpu,
    cpu_delta,
    deployments,
    emit,
    jobs,
    percentile,
    private_services,
    running,
    stack_cpu,
)
from loadtests._bench import simulator as sim_profile
from loadtests._cluster import Cluster, ClusterSpec
from loadtests._floor import floor_processes
from loadtests._peer import MODEL, litellm_proxy, missing
from orchestrator.core.schemas import JobRequest
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job

BODY: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Say hello in one word."}],
    "max_tokens": 8,
    "temperature": 0.7,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench overhead", description=__doc__)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--background-jobs", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="fast-tier worker processes")
    parser.add_argument(
        "--interactive-workers",
        type=int,
        default=1,
        help="fast-tier worker processes on the interactive lane (--lane interactive)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the least the mandated stack adds (loadtests/_floor.py), with and"
        " without its database statements (quiet cluster only)",
    )
    parser.add_argument(
        "--peer",
        choices=["litellm"],
        help="also measure the proxy a user would run instead (loadtests/_peer.py; needs the"
        " peers extra)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


async def open_loop(
    url: str, body: dict[str, Any], headers: dict[str, str], rps: float, seconds: float
) -> list[float]:
    """Send ``rps`` requests a second for ``seconds``; each one's latency in ms."""
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post(url, json=body, headers=headers)
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")
                return
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        t0 = time.perf_counter()
        for i in range(int(rps * seconds)):
            await asyncio.sleep(max(0.0, t0 + i / rps - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed; first: {failures[0]}")
    return latencies


def phase(url: str, body: dict[str, Any], headers: dict[str, str], rps: float, s: float) -> Any:
    asyncio.run(open_loop(url, body, headers, rps, min(s, 3.0)))  # warm-up
    return asyncio.run(open_loop(url, body, headers, rps, s))


def waiting(cluster: Cluster, batch_id: str) -> int:
    with session_scope(cluster.engine) as session:
        query = select(func.count()).where(Job.batch_id == batch_id, Job.status == "queued")
        return int(session.scalar(query) or 0)


def stages(cluster: Cluster) -> dict[str, float]:
    """Where the interactive jobs' time went, from their rows: on the queue, running."""
    with session_scope(cluster.engine) as session:
        rows = session.execute(
            select(Job.created_at, Job.started_at, Job.finished_at).where(
                Job.batch_id.is_(None), Job.finished_at.is_not(None)
            )
        ).all()
    queued = [(s - c).total_seconds() * 1000 for c, s, _ in rows if s is not None]
    ran = [(f - s).total_seconds() * 1000 for _, s, f in rows if s is not None]
    if not queued:
        return {}
    return {
        "queued_p50_ms": round(percentile(queued, 0.5), 2),
        "queued_p99_ms": round(percentile(queued, 0.99), 2),
        "running_p50_ms": round(percentile(ran, 0.5), 2),
        "running_p99_ms": round(percentile(ran, 0.99), 2),
    }


def background(cluster: Cluster, n: int) -> str:
    """Queue ``n`` batch jobs on the fast tier; their batch id."""
    return cluster.submit_batch([JobRequest.model_validate(j) for j in jobs(n, ["fast"], tag="bg")])


def floor(cluster: Cluster, services: Services, args: argparse.Namespace) -> dict[str, Any]:
    """The floor's added latency, with its database statements and without, against a
    direct phase run just before each; and the CPU a request of it cost all processes."""
    figures: dict[str, Any] = {}
    variants = (
        ("floor", True, False),
        ("floor_durable", True, True),
        ("floor_no_db", False, False),
    )
    for name, with_db, answer_first in variants:
        with floor_processes(
            database_url=services.database_url,
            redis_url=services.redis_url,
            simulator_url=f"{cluster.sim_base}/v1",
            log_dir=services.workdir / "floor",
            with_db=with_db,
            answer_first=answer_first,
        ) as run:
            direct = phase(*_direct_args(cluster, args))
            before = stack_cpu(cluster, services, run.pids)
            floored = phase(f"{run.url}/v1/chat/completions", BODY, {}, args.rps, args.seconds)
            used = cpu_delta(before, stack_cpu(cluster, services, run.pids))
        figures[f"{name}_p50_added_ms"] = _added(floored, direct, 0.5)
        figures[f"{name}_p99_added_ms"] = _added(floored, direct, 0.99)
        figures[f"{name}_cpu_ms_per_request"] = _per_request(used, args)
        figures[f"{name}_cpu_s_phase"] = used  # by process, as cpu_s_cluster_phase
    return figures


def peer(cluster: Cluster, services: Services, args: argparse.Namespace) -> dict[str, Any]:
    """The peer proxy's added latency, against a direct phase run just before it, and the
    CPU a request of it cost all processes."""
    sim_v1 = f"{cluster.sim_base}/v1"
    with litellm_proxy(simulator_v1=sim_v1, workdir=services.workdir / "peer") as run:
        direct = phase(*_direct_args(cluster, args))
        before = stack_cpu(cluster, services, {"peer": run.pid})
        url = f"{run.url}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {run.key}"}
        theirs = phase(url, {**BODY, "model": MODEL}, headers, args.rps, args.seconds)
        used = cpu_delta(before, stack_cpu(cluster, services, {"peer": run.pid}))
    return {
        "peer": f"{args.peer} {run.version}",
        "peer_p50_added_ms": _added(theirs, direct, 0.5),
        "peer_p99_added_ms": _added(theirs, direct, 0.99),
        "peer_cpu_ms_per_request": _per_request(used, args),
    }


def _ratio_to_peer(p50_added_ms: float, peers: dict[str, Any]) -> dict[str, float | None]:
    """Switchyard's p50 added over the peer's (None when the peer added nothing measurable)."""
    if not peers:
        return {}
    theirs = float(peers["peer_p50_added_ms"])
    return {"p50_ratio_to_peer": round(p50_added_ms / theirs, 3) if theirs > 0 else None}


def _per_request(cpu: dict[str, float], args: argparse.Namespace) -> float:
    """CPU ms a request, over a phase's warm-up and its timed part alike."""
    sent = int(args.rps * min(args.seconds, 3.0)) + int(args.rps * args.seconds)
    return round(sum(cpu.values()) * 1000 / sent, 2)


def _direct_args(cluster: Cluster, args: argparse.Namespace) -> tuple[Any, ...]:
    return (
        f"{cluster.sim_base}/v1/chat/completions",
        {**BODY, "model": "bench-fast"},
        {"Authorization": "Bearer sim-key"},
        args.rps,
        args.seconds,
    )


def _added(ours: list[float], direct: list[float], q: float) -> float:
    return round(percentile(ours, q) - percentile(direct, q), 2)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if (args.floor or args.peer) and args.background_jobs:
        quiet = "--floor and --peer measure a quiet stack: leave out --background-jobs"
        print(quiet, file=sys.stderr)
        return 2
    why = missing(args.peer) if args.peer else None
    if why:
        print(why, file=sys.stderr)
        return 2
    spec = ClusterSpec(
        deployments=deployments(["fast"]),
        simulator=sim_profile(0.0),
        workers=args.workers,
        interactive_workers=args.interactive_workers,
        tiers=("fast",),
        concurrency=args.concurrency,
        reconciler=True,
        api=True,
    )
    with private_services() as services, running(spec, services) as cluster:
        batch_id = background(cluster, args.background_jobs) if args.background_jobs else None
        direct_args = _direct_args(cluster, args)
        ours_args = (
            f"{cluster.api_url}/v1/chat/completions",
            {**BODY, "model": "tier:fast"},
            {"Authorization": f"Bearer {cluster.api_key}"},
            args.rps,
            args.seconds,
        )
        if batch_id is None:  # a quiet cluster: one phase after the other
            direct = phase(*direct_args)
            before = cluster_cpu(cluster, services)
            ours = phase(*ours_args)
        else:  # side by side, so the baseline sees the same moment of the drain
            before = cluster_cpu(cluster, services)
            with ThreadPoolExecutor(2) as pool:
                direct_future = pool.submit(phase, *direct_args)
                ours = pool.submit(phase, *ours_args).result()
                direct = direct_future.result()
        cpu = cpu_delta(before, cluster_cpu(cluster, services))
        left = waiting(cluster, batch_id) if batch_id else None
        timed = stages(cluster)
        peers = peer(cluster, services, args) if args.peer else {}
        floors = floor(cluster, services, args) if args.floor else {}
    result: dict[str, Any] = {
        "benchmark": "overhead",
        "rps": args.rps,
        "seconds": args.seconds,
        "requests": len(ours),
        "background_jobs": args.background_jobs,
        "workers": args.workers,
        "interactive_workers": args.interactive_workers,
        "direct_p50_ms": round(percentile(direct, 0.5), 2),
        "direct_p99_ms": round(percentile(direct, 0.99), 2),
        "cluster_p50_ms": round(percentile(ours, 0.5), 2),
        "cluster_p99_ms": round(percentile(ours, 0.99), 2),
        "p50_added_ms": _added(ours, direct, 0.5),
        "p99_added_ms": _added(ours, direct, 0.99),
        **peers,
        **_ratio_to_peer(_added(ours, direct, 0.5), peers),
        **floors,
        "cpu_s_cluster_phase": cpu,
        "cpu_ms_per_request": _per_request(cpu, args),
        "interactive_stages": timed,
    }
    if left is not None:
        result["background_left"] = left
    return emit(result)
