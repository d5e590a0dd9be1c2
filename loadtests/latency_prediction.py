"""``switchyard bench latency_prediction --json``: how close predicted latencies come to observed.

A simulator (in a thread) is given a different latency distribution per model
(lognormal, p50/p99 below). For each deployment the real provider adapter makes
--warmup calls, recorded by the workers' ``LiveStatsGuard`` into live statistics
in Redis (a private key prefix); then --calls more, each predicted just before it
is made (``orchestrator.routing.objective.estimate`` from a fresh snapshot) and
compared with what it took. The statistics keep learning during that phase, as
in production.

Reported per deployment and overall: median absolute percentage error of the
per-call prediction, and of the prediction of the deployment's mean latency;
whether the predicted order of deployments by speed matches the observed one.
Baselines in the same run: the prior (what the dispatcher predicts with no
statistics) and one global mean for every deployment (statistics not kept per
deployment). The noise floor: the error of the best constant predictor, the
observed median of each deployment itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
from typing import Any

import httpx
import redis

from loadtests._serve import serving
from orchestrator.core.catalog import Deployment, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.routing.live_stats import PRIOR, LiveStats
from orchestrator.routing.objective import estimate
from orchestrator.simulator import SimulatorConfig, create_simulator_app
from workers.guards.base import Call, Progress
from workers.guards.livestats import LiveStatsGuard
from workers.providers import adapter_for

PROFILES = {
    "gpt-4o-mini": (60.0, 180.0),
    "gpt-4.1": (180.0, 500.0),
    "codestral-latest": (40.0, 90.0),
    "o4-mini": (350.0, 1200.0),
}
DEPLOYMENTS = ("sim-gpt-4o-mini", "sim-gpt-4.1", "sim-codestral", "sim-o4-mini")
PROMPTS = ("Name a colour.", "What is the capital of Peru?", "Write a haiku about rain.")


def mdape(predicted: list[float], observed: list[float]) -> float:
    """Median absolute percentage error, in percent."""
    errors = [abs(p - o) / max(o, 1.0) for p, o in zip(predicted, observed, strict=True)]
    return round(100 * statistics.median(errors), 1)


def run_calls(
    dep: Deployment, settings: Settings, http: httpx.Client, guard: LiveStatsGuard, count: int
) -> list[tuple[float, float]]:
    """``count`` calls; each returns (predicted ms before it, observed ms)."""
    adapter = adapter_for(dep, http, settings)
    pairs = []
    for i in range(count):
        request = JobRequest(prompt=PROMPTS[i % len(PROMPTS)], max_tokens=64)
        seen = guard.stats.read([dep.name])[dep.name]
        predicted = estimate(dep, 12, request.max_tokens, seen).predicted_latency_ms
        call = Call(f"bench-{i}", dep, request, Progress(), 12)
        guard.before_call(call)
        began = time.perf_counter()
        completion = adapter.complete(dep, request)
        observed = (time.perf_counter() - began) * 1000
        guard.after_success(call, completion)
        pairs.append((predicted, observed))
    return pairs


def evaluate(results: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    observed_all = [o for pairs in results.values() for _, o in pairs]
    global_mean = statistics.fmean(observed_all)
    per: dict[str, Any] = {}
    for name, pairs in results.items():
        predicted, observed = [p for p, _ in pairs], [o for _, o in pairs]
        median = statistics.median(observed)
        per[name] = {
            "observed_p50_ms": round(median, 1),
            "observed_mean_ms": round(statistics.fmean(observed), 1),
            "predicted_mean_ms": round(statistics.fmean(predicted), 1),
            "mdape_live_pct": mdape(predicted, observed),
            "mdape_prior_pct": mdape([PRIOR.predict_ms(64)] * len(observed), observed),
            "mdape_global_mean_pct": mdape([global_mean] * len(observed), observed),
            "mdape_noise_floor_pct": mdape([median] * len(observed), observed),
        }
    by_predicted = sorted(per, key=lambda n: per[n]["predicted_mean_ms"])
    by_observed = sorted(per, key=lambda n: per[n]["observed_mean_ms"])
    keys = ("mdape_live_pct", "mdape_prior_pct", "mdape_global_mean_pct", "mdape_noise_floor_pct")
    overall = {k: round(statistics.median(v[k] for v in per.values()), 1) for k in keys}
    mean_errors = [
        abs(v["predicted_mean_ms"] - v["observed_mean_ms"]) / v["observed_mean_ms"]
        for v in per.values()
    ]
    overall["mean_latency_error_pct"] = round(100 * max(mean_errors), 1)
    return {
        "deployments": per,
        "overall_median_over_deployments": overall,
        "speed_order_predicted": by_predicted,
        "speed_order_observed": by_observed,
        "speed_order_matches": by_predicted == by_observed,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchyard bench latency_prediction")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SWITCHYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--json", action="store_true", help="(always JSON; accepted for symmetry)")
    args = parser.parse_args(argv)
    models = {
        m: {"latency_p50_ms": p50, "latency_p99_ms": p99} for m, (p50, p99) in PROFILES.items()
    }
    config = SimulatorConfig.model_validate({"models": models})
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"sybench-{secrets.token_hex(4)}:"
    guard = LiveStatsGuard(LiveStats(client, prefix=prefix, ttl_s=0.0))
    try:
        with serving(create_simulator_app(config=config)) as root, httpx.Client(timeout=30) as http:
            settings = Settings(simulator_url=f"{root}/v1")
            catalog = load_catalog(settings)
            results = {}
            for name in DEPLOYMENTS:
                dep = catalog.get(name)
                run_calls(dep, settings, http, guard, args.warmup)
                results[name] = run_calls(dep, settings, http, guard, args.calls)
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
    report = {"benchmark": "latency_prediction", "warmup": args.warmup, "calls": args.calls}
    report["simulator_profiles_ms"] = {m: {"p50": a, "p99": b} for m, (a, b) in PROFILES.items()}
    print(json.dumps({**report, **evaluate(results)}, indent=1))
    return 0
