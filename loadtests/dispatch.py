"""``switchyard bench dispatch --jobs N --json``: how fast a batch is accepted and queued.

On one private Redis (broker) and Postgres, in one run:

    switchyard        one ``POST /v1/batches`` of N jobs (a JSON array) to the real
                      API (``switchyard api``), timed until every job is on its tier's
                      queue (counted in Redis as ``GET /queues`` counts: a batch
                      message carries up to 16 jobs): parse, validate, classify and
                      route every line, bulk-insert the rows, publish pipelined.
    raw apply_async   N no-op tasks sent with plain Celery ``apply_async`` from one
                      process, one call per task, as most Celery code does; no
                      workers run, so the messages stay queued and are counted.

Each half is run ``--repeat`` times after a warm-up, the two interleaved (ours, raw,
ours, raw, ...) so a machine that speeds up or slows down meanwhile favours neither;
the best run of each counts
(the least disturbed by the rest of the machine). Prints ``accepted_per_s``,
``raw_apply_async_per_s`` and ``ratio`` (the first over the second).
"""

from __future__ import annotations

import argparse
import time

import httpx
import redis

from loadtests import _raw
from loadtests._bench import Services, deployments, emit, jobs, private_services, running
from loadtests._bench import simulator as sim_profile
from loadtests._cluster import Cluster, ClusterSpec
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.queues.depth import read_depths


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench dispatch", description=__doc__)
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def queued(client: redis.Redis, prefix: str) -> int:
    """Messages waiting on every list under ``prefix`` (tier queues and priority lists)."""
    total = 0
    for key in client.scan_iter(f"{prefix}*", count=1000):
        if client.type(key) == b"list":
            total += int(client.llen(key))
    return total


def queued_jobs(client: redis.Redis, prefix: str) -> int:
    """Jobs waiting on every tier queue under ``prefix``, each of a batch message's counted."""
    return sum(depth.depth for depth in read_depths(client, prefix=prefix).values())


def purge(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(f"{prefix}*", count=1000):
        if client.type(key) == b"list":
            client.delete(key)


def post_batch(cluster: Cluster, n: int, client: redis.Redis) -> float:
    """POST one batch of ``n``; seconds until all ``n`` messages are in Redis."""
    tiers = [t.value for t in ALL_TIERS]
    body = jobs(n, tiers)
    prefix = cluster.settings.redis_key_prefix
    purge(client, prefix)
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(timeout=600) as http:
        t0 = time.perf_counter()
        response = http.post(f"{cluster.api_url}/v1/batches", json=body, headers=headers)
        response.raise_for_status()
        while queued_jobs(client, prefix) < n:
            time.sleep(0.005)
        return time.perf_counter() - t0


def raw_apply_async(services: Services, n: int, client: redis.Redis) -> float:
    _raw.app.conf.broker_url = services.redis_url
    purge(client, _raw.QUEUE)
    seconds = _raw.publish_noops(_raw.app, n, batched=False)
    while queued(client, _raw.QUEUE) < n:
        time.sleep(0.005)
    purge(client, _raw.QUEUE)
    return seconds


def main(argv: list[str]) -> int:
    args = parse(argv)
    spec = ClusterSpec(
        deployments=deployments(),
        simulator=sim_profile(0.0),
        workers=0,
        reconciler=False,
        api=True,
    )
    with private_services() as services, running(spec, services) as cluster:
        client = redis.Redis.from_url(services.redis_url)
        post_batch(cluster, min(args.jobs, 500), client)  # warm-up
        raw_apply_async(services, min(args.jobs, 500), client)
        ours_runs, raw_runs = [], []
        for _ in range(args.repeat):  # interleaved, so both see the machine as it is
            ours_runs.append(post_batch(cluster, args.jobs, client))
            raw_runs.append(raw_apply_async(services, args.jobs, client))
        ours, raw = min(ours_runs), min(raw_runs)
    return emit(
        {
            "benchmark": "dispatch",
            "jobs": args.jobs,
            "seconds": round(ours, 3),
            "raw_seconds": round(raw, 3),
            "accepted_per_s": round(args.jobs / ours, 1),
            "raw_apply_async_per_s": round(args.jobs / raw, 1),
            "ratio": round(raw / ours, 3),
        }
    )
