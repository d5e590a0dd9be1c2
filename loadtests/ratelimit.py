"""``switchyard bench ratelimit --rpm R --workers W --seconds S --json``: use the whole limit.

W ``switchyard worker`` processes share one fast-tier deployment whose provider
(the simulator) admits R requests per sliding minute and answers every other
call with a 429; the catalog tells Switchyard the same limit. More jobs are
queued than S seconds at R could serve, so the workers are never short of work.

The measurement window opens at the provider's first request and lasts S
seconds; the simulator's own counters (``/_sim/stats``) are read at both ends:

    achieved_rpm            answered requests in the window x 60 / S
    limit_rpm               R
    utilization             achieved_rpm / limit_rpm
    provider_429_fraction   429 answers / requests received in the window

The baseline is the limit itself: a perfect client sends exactly R a minute.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from loadtests._bench import deployments, emit, jobs, private_services, running
from loadtests._bench import simulator as sim_profile
from loadtests._cluster import Cluster, ClusterSpec
from orchestrator.core.schemas import JobRequest


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench ratelimit", description=__doc__)
    parser.add_argument("--rpm", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def counts(cluster: Cluster) -> dict[str, Any]:
    total: dict[str, Any] = cluster.sim_stats()["total"]
    return total


def measure(args: argparse.Namespace, cluster: Cluster) -> dict[str, float]:
    n = int(args.rpm * args.seconds / 60 * 1.5) + 200
    cluster.submit([JobRequest.model_validate(j) for j in jobs(n, ["fast"])])
    deadline = time.monotonic() + 120
    while (start := counts(cluster))["received"] == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the provider saw no request in 120 s")
        time.sleep(0.01)
    opened = time.monotonic()
    time.sleep(max(0.0, opened + args.seconds - time.monotonic()))
    end = counts(cluster)
    seconds = time.monotonic() - opened
    served = end["served"] - start["served"]
    received = end["received"] - start["received"]
    limited = end["rate_limited"] - start["rate_limited"]
    return {
        "seconds": seconds,
        "served": served,
        "received": received,
        "rate_limited": limited,
        "achieved_rpm": served * 60 / seconds,
    }


def main(argv: list[str]) -> int:
    args = parse(argv)
    spec = ClusterSpec(
        deployments=deployments(["fast"], rpm=args.rpm),
        simulator=sim_profile(0.0, rpm=args.rpm),
        workers=args.workers,
        tiers=("fast",),
        concurrency=args.concurrency,
        reconciler=True,
    )
    with private_services() as services, running(spec, services) as cluster:
        got = measure(args, cluster)
    return emit(
        {
            "benchmark": "ratelimit",
            "workers": args.workers,
            "seconds": round(got["seconds"], 2),
            "requests_received": int(got["received"]),
            "requests_served": int(got["served"]),
            "achieved_rpm": round(got["achieved_rpm"], 1),
            "limit_rpm": args.rpm,
            "utilization": round(got["achieved_rpm"] / args.rpm, 4),
            "provider_429_fraction": round(got["rate_limited"] / max(1, got["received"]), 4),
        }
    )
