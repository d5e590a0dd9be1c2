"""Order a tier's deployments by an objective: cost, latency, quality or balanced.

    candidates = estimate(deployments, need, stats)   expected cost, worst-case cost,
                                                      predicted latency, error rate
    kept       = constrain(candidates, max_cost_usd, max_latency_ms)
    plan       = sorted(kept, by the objective)

The tier is the quality floor: every deployment that serves it may serve the
request, and an explicit objective replaces the strong/weak ordering (ask for
``quality`` to put the strongest first).

Expected cost is the estimated prompt tokens times the input price plus the
expected output tokens times the output price; the expected output is the
deployment's recent mean output length (live statistics) capped at ``max_tokens``,
or ``DEFAULT_OUTPUT_TOKENS`` before any call was seen. The worst case prices all
of ``max_tokens`` and is what ``max_cost_usd`` and budget reservations use, so a
job can never cost more than either allows. Predicted latency comes from
``orchestrator.routing.live_stats``; a deployment that often fails is predicted slower
(its expected time counts the retries: ``latency / (1 - error_rate)``).

Objectives (ties always broken by the next criterion, then by name):

    cost      expected cost, then predicted latency
    latency   predicted latency, then expected cost
    quality   strength (strongest first), then expected cost
    balanced  cost / cheapest + latency / fastest (each relative to the best candidate)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestrator.core.catalog import Deployment
from orchestrator.core.errors import ValidationFailed
from orchestrator.core.schemas import Objective
from orchestrator.costs.pricing import format_usd
from orchestrator.routing.live_stats import PRIOR, DeploymentStats

DEFAULT_OUTPUT_TOKENS = 256
MAX_ERROR_RATE = 0.95
OBJECTIVES: tuple[Objective, ...] = ("cost", "latency", "quality", "balanced")


@dataclass(frozen=True)
class Candidate:
    """One deployment as the objective sees it for one request."""

    deployment: Deployment
    expected_output_tokens: int
    expected_cost_micro_usd: Decimal
    max_cost_micro_usd: Decimal
    predicted_latency_ms: float
    error_rate: float
    samples: int

    @property
    def name(self) -> str:
        return self.deployment.name

    def as_json(self) -> dict[str, object]:
        return {
            "deployment": self.name,
            "expected_cost_micro_usd": int(self.expected_cost_micro_usd),
            "max_cost_micro_usd": int(self.max_cost_micro_usd),
            "predicted_latency_ms": round(self.predicted_latency_ms),
            "expected_output_tokens": self.expected_output_tokens,
            "error_rate": round(self.error_rate, 4),
            "samples": self.samples,
        }


def estimate(
    deployment: Deployment,
    input_tokens: int,
    max_tokens: int,
    stats: DeploymentStats | None = None,
) -> Candidate:
    """Expected and worst-case cost, and predicted latency, of one call to ``deployment``."""
    seen = stats or PRIOR
    mean_out = seen.mean_output_tokens
    output = min(max_tokens, round(mean_out) if mean_out is not None else DEFAULT_OUTPUT_TOKENS)
    price_in, price_out = deployment.input_usd_per_mtok, deployment.output_usd_per_mtok
    error_rate = min(MAX_ERROR_RATE, max(0.0, seen.error_rate))
    return Candidate(
        deployment=deployment,
        expected_output_tokens=output,
        expected_cost_micro_usd=Decimal(input_tokens) * price_in + Decimal(output) * price_out,
        max_cost_micro_usd=Decimal(input_tokens) * price_in + Decimal(max_tokens) * price_out,
        predicted_latency_ms=seen.predict_ms(output) / (1.0 - error_rate),
        error_rate=error_rate,
        samples=seen.samples,
    )


def estimate_all(
    deployments: Sequence[Deployment],
    input_tokens: int,
    max_tokens: int,
    stats: Mapping[str, DeploymentStats] | None = None,
) -> list[Candidate]:
    stats = stats or {}
    return [estimate(d, input_tokens, max_tokens, stats.get(d.name)) for d in deployments]


def constrain(
    candidates: list[Candidate], *, max_cost_usd: float | None, max_latency_ms: int | None
) -> list[Candidate]:
    """Drop candidates over the request's limits; a 422 naming the limit if none is left."""
    kept = candidates
    if max_cost_usd is not None:
        limit = Decimal(str(max_cost_usd)) * 1_000_000
        kept = [c for c in kept if c.max_cost_micro_usd <= limit]
        if candidates and not kept:
            cheapest = min(c.max_cost_micro_usd for c in candidates) / 1_000_000
            raise ValidationFailed(
                "max_cost_usd",
                f"no deployment can serve this request for at most ${max_cost_usd}"
                f" (cheapest worst case ${cheapest:.6f} with max_tokens)",
            )
    if max_latency_ms is not None:
        before = kept
        kept = [c for c in kept if c.predicted_latency_ms <= max_latency_ms]
        if before and not kept:
            fastest = min(c.predicted_latency_ms for c in before)
            raise ValidationFailed(
                "max_latency_ms",
                f"no deployment is predicted under {max_latency_ms} ms"
                f" (fastest predicted {fastest:.0f} ms)",
            )
    return kept


def _balanced(candidates: Sequence[Candidate]) -> Callable[[Candidate], tuple[float, str]]:
    cheapest = float(min(c.expected_cost_micro_usd for c in candidates)) or 1e-9
    fastest = min(c.predicted_latency_ms for c in candidates) or 1e-9

    def key(c: Candidate) -> tuple[float, str]:
        score = float(c.expected_cost_micro_usd) / cheapest + c.predicted_latency_ms / fastest
        return (score, c.name)

    return key


def sort_key(objective: Objective, candidates: Sequence[Candidate]) -> Callable[[Candidate], Any]:
    """The ordering key of an objective over these candidates."""
    if objective == "latency":
        return lambda c: (c.predicted_latency_ms, c.expected_cost_micro_usd, c.name)
    if objective == "quality":
        return lambda c: (-c.deployment.strength, c.expected_cost_micro_usd, c.name)
    if objective == "balanced":
        return _balanced(candidates)
    return lambda c: (c.expected_cost_micro_usd, c.predicted_latency_ms, c.name)


def order(candidates: Sequence[Candidate], objective: Objective) -> list[Candidate]:
    """The plan: every candidate of the tier (the tier is the quality floor), by the objective.

    An explicit objective replaces the strong/weak ordering: ``quality`` is the way
    to ask for the strongest model first.
    """
    if not candidates:
        return []
    return sorted(candidates, key=sort_key(objective, candidates))


def describe(candidates: Sequence[Candidate], objective: Objective) -> list[str]:
    """One line per candidate, in plan order, for the job's routing record."""
    return [
        f"{c.name}: expected {format_usd(int(c.expected_cost_micro_usd))}"
        f" (worst {format_usd(int(c.max_cost_micro_usd))}),"
        f" predicted {c.predicted_latency_ms:.0f} ms"
        f" ({c.samples} calls seen, error rate {c.error_rate:.1%})"
        for c in candidates
    ] or [f"no candidate for objective {objective}"]
