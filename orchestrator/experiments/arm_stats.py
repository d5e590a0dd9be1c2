"""Per-arm figures of an experiment with 95% confidence intervals, and arm-vs-control tests.

Pure functions over plain numbers (no database), so every figure is unit-tested:

    success_rate, fallback_rate (0/1 outcomes)
        rate with a Wilson interval; arm minus control with Newcombe's interval and
        Fisher's exact test at small counts, a two-proportion z-test above
        (``experiments.rates``)
    cost_per_job_micro_usd, quality
        mean with a Student-t interval; arm minus control by Welch's t-test
        (unequal variances, Welch-Satterthwaite degrees of freedom)
    latency_p50_ms, latency_p95_ms
        percentile with a bootstrap percentile interval (1,000 resamples, fixed
        seed); arm minus control by a paired-resample bootstrap of the difference

A difference is significant when its two-sided p-value is under ``ALPHA`` (0.05),
which for Welch is the same as its 95% interval excluding zero.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from orchestrator.experiments.rates import compare_rates, wilson

ALPHA = 0.05
RESAMPLES = 1000
SEED = 11
RATE_METRICS = ("success_rate", "fallback_rate")
MEAN_METRICS = ("cost_per_job_micro_usd", "quality")
PERCENTILE_METRICS = {"latency_p50_ms": 50.0, "latency_p95_ms": 95.0}


@dataclass(frozen=True)
class JobOutcome:
    """One finished job of an experiment: what the per-arm figures are made of."""

    arm: str
    status: str
    cost_micro_usd: int
    latency_ms: int | None
    fell_back: bool


@dataclass(frozen=True)
class Estimate:
    """A figure, its 95% interval (None with too little data) and how many values made it."""

    value: float | None
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class Difference:
    """Arm minus control for one figure: the gap, its 95% interval, p-value, verdict."""

    diff: float | None
    low: float | None
    high: float | None
    p_value: float | None
    significant: bool


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_critical(df: float, alpha: float = ALPHA) -> float:
    """The t value with two-sided tail ``alpha`` (bisection on the p-value)."""
    low, high = 0.0, 1000.0
    for _ in range(100):
        mid = (low + high) / 2.0
        low, high = (mid, high) if t_two_sided_p(mid, df) > alpha else (low, mid)
    return (low + high) / 2.0


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def mean_interval(values: Sequence[float]) -> Estimate:
    """The mean with a Student-t 95% interval (no interval under two values)."""
    if not values:
        return Estimate(None, None, None, 0)
    if len(values) < 2:
        return Estimate(float(values[0]), None, None, 1)
    mean, var = _mean_var(values)
    half = t_critical(len(values) - 1) * math.sqrt(var / len(values))
    return Estimate(mean, mean - half, mean + half, len(values))


def welch(control: Sequence[float], arm: Sequence[float]) -> Difference:
    """Welch's t-test of mean(arm) - mean(control), with its 95% interval."""
    if len(control) < 2 or len(arm) < 2:
        return Difference(None, None, None, None, False)
    (m0, v0), (m1, v1) = _mean_var(control), _mean_var(arm)
    s0, s1 = v0 / len(control), v1 / len(arm)
    diff, se = m1 - m0, math.sqrt(s0 + s1)
    if se == 0.0:  # both constant: any gap is certain, no gap is none
        return Difference(diff, diff, diff, 0.0 if diff else 1.0, diff != 0.0)
    df = (s0 + s1) ** 2 / (s0**2 / (len(control) - 1) + s1**2 / (len(arm) - 1))
    p = t_two_sided_p(diff / se, df)
    half = t_critical(df) * se
    return Difference(diff, diff - half, diff + half, p, p < ALPHA)


def _sorted_percentile(ordered: Sequence[float], q: float) -> float:
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (numpy's default)."""
    return _sorted_percentile(sorted(values), q)


@dataclass(frozen=True)
class Resampled:
    """A sample and the latency percentiles of its ``RESAMPLES`` bootstrap resamples."""

    values: tuple[float, ...]
    draws: dict[float, list[float]]

    @classmethod
    def of(cls, values: Sequence[float], seed: int = SEED) -> Resampled:
        """Resample once; every percentile comes from the same sorted resample."""
        draws: dict[float, list[float]] = {q: [] for q in PERCENTILE_METRICS.values()}
        if len(values) >= 2:
            rng = random.Random(seed)
            for _ in range(RESAMPLES):
                ordered = sorted(rng.choices(values, k=len(values)))
                for q, found in draws.items():
                    found.append(_sorted_percentile(ordered, q))
        return cls(tuple(values), draws)


def _interval(draws: list[float]) -> tuple[float, float]:
    return percentile(draws, 2.5), percentile(draws, 97.5)


def percentile_estimate(sample: Resampled, q: float) -> Estimate:
    """A percentile with its bootstrap 95% percentile interval."""
    if not sample.values:
        return Estimate(None, None, None, 0)
    value = percentile(sample.values, q)
    if not sample.draws[q]:
        return Estimate(value, None, None, len(sample.values))
    low, high = _interval(sample.draws[q])
    return Estimate(value, low, high, len(sample.values))


def percentile_difference(control: Resampled, arm: Resampled, q: float) -> Difference:
    """percentile(arm) - percentile(control): bootstrap interval and two-sided p-value."""
    if not control.draws[q] or not arm.draws[q]:
        return Difference(None, None, None, None, False)
    draws = [a - c for a, c in zip(arm.draws[q], control.draws[q], strict=True)]
    low, high = _interval(draws)
    below = sum(1 for d in draws if d <= 0) / RESAMPLES
    above = sum(1 for d in draws if d >= 0) / RESAMPLES
    p = min(1.0, 2.0 * min(below, above))
    diff = percentile(arm.values, q) - percentile(control.values, q)
    return Difference(diff, low, high, p, low > 0 or high < 0)


def bootstrap_percentile(values: Sequence[float], q: float, seed: int = SEED) -> Estimate:
    """A percentile with a bootstrap 95% percentile interval (``q`` in PERCENTILE_METRICS)."""
    return percentile_estimate(Resampled.of(values, seed), q)


def bootstrap_difference(
    control: Sequence[float], arm: Sequence[float], q: float, seed: int = SEED
) -> Difference:
    """percentile(arm) - percentile(control), each arm resampled independently."""
    return percentile_difference(Resampled.of(control, seed), Resampled.of(arm, seed + 1), q)


def arm_samples(outcomes: Sequence[JobOutcome], scores: Sequence[float]) -> dict[str, list[float]]:
    """The values each figure is computed from, for one arm."""
    succeeded = [o for o in outcomes if o.status == "succeeded"]
    latencies = [float(o.latency_ms) for o in succeeded if o.latency_ms is not None]
    return {
        "success_rate": [1.0 if o.status == "succeeded" else 0.0 for o in outcomes],
        "fallback_rate": [1.0 if o.fell_back else 0.0 for o in succeeded],
        "cost_per_job_micro_usd": [float(o.cost_micro_usd) for o in outcomes],
        "quality": list(scores),
        "latency_p50_ms": latencies,
        "latency_p95_ms": latencies,
    }


def rate_interval(values: Sequence[float]) -> Estimate:
    """A rate of 0/1 outcomes with its Wilson 95% interval."""
    if not values:
        return Estimate(None, None, None, 0)
    hits = sum(1 for v in values if v)
    low, high = wilson(hits, len(values))
    return Estimate(hits / len(values), low, high, len(values))


def rate_difference(control: Sequence[float], arm: Sequence[float]) -> Difference:
    """rate(arm) - rate(control): Newcombe's interval, exact (or z) p-value, verdict."""
    if not control or not arm:
        return Difference(None, None, None, None, False)
    found = compare_rates(
        (sum(1 for v in control if v), len(control)), (sum(1 for v in arm if v), len(arm))
    )
    diff, low, high, p = found
    return Difference(diff, low, high, p, p < ALPHA)


def bounded(found: Estimate, low: float = 0.0, high: float = 1.0) -> Estimate:
    """An interval clipped to the range its figure can take (rates and scores: [0, 1])."""
    if found.low is None or found.high is None:
        return found
    return replace(found, low=max(low, found.low), high=min(high, found.high))


def figures(samples: dict[str, list[float]], latency: Resampled) -> dict[str, Estimate]:
    """Every figure of one arm with its interval."""
    out = {m: rate_interval(samples[m]) for m in RATE_METRICS}
    out.update({m: mean_interval(samples[m]) for m in MEAN_METRICS})
    out["quality"] = bounded(out["quality"])
    for metric, q in PERCENTILE_METRICS.items():
        out[metric] = percentile_estimate(latency, q)
    return out


def compare(
    control: dict[str, list[float]],
    arm: dict[str, list[float]],
    latency: tuple[Resampled, Resampled],
) -> dict[str, Difference]:
    """Every figure of an arm minus control's, tested (``latency``: control's, the arm's)."""
    out = {m: rate_difference(control[m], arm[m]) for m in RATE_METRICS}
    out.update({m: welch(control[m], arm[m]) for m in MEAN_METRICS})
    for metric, q in PERCENTILE_METRICS.items():
        out[metric] = percentile_difference(latency[0], latency[1], q)
    return out


def report(
    *,
    arms: Sequence[str],
    control: str,
    outcomes: Sequence[JobOutcome],
    scores: Sequence[tuple[str, float]],
    admitted: dict[str, int],
    paused: dict[str, Any],
) -> dict[str, Any]:
    """The whole report: per-arm figures and every arm's differences from control."""
    samples = {
        arm: arm_samples([o for o in outcomes if o.arm == arm], [s for a, s in scores if a == arm])
        for arm in arms
    }
    latency = {
        arm: Resampled.of(samples[arm]["latency_p50_ms"], SEED + i) for i, arm in enumerate(arms)
    }
    per_arm = []
    for arm in arms:
        found = figures(samples[arm], latency[arm])
        per_arm.append(
            {
                "arm": arm,
                "control": arm == control,
                "paused": paused.get(arm),
                "admitted": admitted.get(arm, 0),
                "finished": len(samples[arm]["success_rate"]),
                "figures": {m: asdict(e) for m, e in found.items()},
            }
        )
    comparisons = []
    for arm in arms:
        if arm == control:
            continue
        found_diff = compare(samples[control], samples[arm], (latency[control], latency[arm]))
        differences = {m: asdict(d) for m, d in found_diff.items()}
        comparisons.append({"arm": arm, "control": control, "differences": differences})
    return {"alpha": ALPHA, "arms": per_arm, "comparisons": comparisons}
