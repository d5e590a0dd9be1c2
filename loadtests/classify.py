"""``switchyard bench classify --json``: how long routing decisions take on 4,000-character prompts.

Measures, per prompt, in one process and one run:

    baseline        reading the prompt: ``prompt_text()``, lower-casing, splitting into words
    classify        the tier pipeline the settings name (default: the learned model)
    classify_rules  the old rules pipeline, for comparison
    strength        the strong/weak scorer (``--scorer``, default the router's: tiered)
    route           classify + strength + the route plan, as the dispatcher calls it

and prints p50/p99/max in milliseconds, plus the p99 ratio to the baseline
(machines here are shared and noisy: the ratio is the result). The prompts are
a fixed mix of prose, code, math and operator-heavy text, each padded to
``--chars`` characters, so runs are comparable.

``model_rss_mb``: in a fresh process that has imported the API (``create_app``'s
module), the resident memory loading the tier model and its encoder adds, and
the time it takes (the baseline: the same process before loading).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.routing import StrengthPolicy, classify, route
from orchestrator.routing import calibration as calibrations
from orchestrator.routing.classify import stages_of
from orchestrator.routing.scorers import DEFAULT_SCORER, get_scorer

SEEDS = (
    "The committee met again and read the minutes of the previous session. ",
    "def total(items):\n    return sum(i.price for i in items)  # why is this slow?\n",
    "A train leaves at 3 pm at 60 mph; another at 4 pm at 80 mph. How far apart are they? ",
    "x = 3 * (y + 2) / 7 - 4 ^ 2 <= 10 + 5 * 6 = z; ",
    "Compare and contrast the two proposals, then explain why one is better. ",
    "Please summarise this customer email politely and briefly for the support team. ",
)


def prompts(count: int, chars: int, seed: int = 7) -> list[JobRequest]:
    """``count`` requests of ``chars`` characters each, built from shuffled seed sentences."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts: list[str] = []
        while sum(map(len, parts)) < chars:
            parts.append(rng.choice(SEEDS))
        out.append(JobRequest(prompt="".join(parts)[:chars]))
    return out


def timings_ms(fn: Callable[[JobRequest], object], requests: Sequence[JobRequest]) -> list[float]:
    for request in requests[:200]:  # warm caches, regex compilation, the allocator
        fn(request)
    out = []
    for request in requests:
        start = time.perf_counter_ns()
        fn(request)
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 4),
        "max_ms": round(ordered[-1], 4),
    }


_RSS_PROBE = """
import json, time
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
import orchestrator.api.app
from orchestrator.routing import tier_model
from orchestrator.core.schemas import JobRequest
before = rss_mb(); start = time.perf_counter()
tier_model.current().predict("Write a Python function that parses a CSV file. " * 80)
print(json.dumps({"api_rss_mb": round(before, 1), "model_rss_mb": round(rss_mb() - before, 1),
                  "load_s": round(time.perf_counter() - start, 3)}))
"""


def model_memory() -> dict[str, Any]:
    """RSS the API process gains by loading the tier model (a fresh process, Linux /proc)."""
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, check=True
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchyard bench classify")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--chars", type=int, default=4000)
    parser.add_argument("--scorer", default=DEFAULT_SCORER)
    parser.add_argument("--json", action="store_true", help="(always JSON; accepted for symmetry)")
    args = parser.parse_args(argv)
    catalog = load_catalog(Settings())
    policy = StrengthPolicy(get_scorer(args.scorer), calibrations.builtin(args.scorer))
    requests = prompts(args.prompts, args.chars)
    rules = stages_of("rules")

    def baseline(request: JobRequest) -> object:
        return request.prompt_text().lower().split()

    measured = {
        "baseline": stats(timings_ms(baseline, requests)),
        "classify": stats(timings_ms(lambda r: classify(r, catalog), requests)),
        "classify_rules": stats(timings_ms(lambda r: classify(r, catalog, rules), requests)),
        "strength": stats(timings_ms(policy.decide, requests)),
        "route": stats(timings_ms(lambda r: route(r, catalog, policy), requests)),
    }
    base = measured["baseline"]["p99_ms"] or 1e-9
    result: dict[str, Any] = {
        "benchmark": "classify",
        "prompts": args.prompts,
        "chars": args.chars,
        "scorer": args.scorer,
        "classifier": Settings().router_tier_classifier,
        **measured,
        "p99_ratio_to_baseline": {
            k: round(v["p99_ms"] / base, 2) for k, v in measured.items() if k != "baseline"
        },
    }
    result["memory"] = model_memory()
    print(json.dumps(result, indent=1))
    return 0
