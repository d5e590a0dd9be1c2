"""The objective orders a tier's deployments by expected cost, predicted latency or strength."""

from __future__ import annotations

import pytest

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import ValidationFailed
from orchestrator.core.schemas import JobRequest
from orchestrator.routing import route
from orchestrator.routing.live_stats import DeploymentStats, stats_from_hash
from orchestrator.routing.objective import estimate

CATALOG = load_catalog(Settings())
FAST = "What is the capital of Peru?"


def plan(request: JobRequest, stats: dict[str, DeploymentStats] | None = None) -> list[str]:
    return [d.name for d in route(request, CATALOG, stats=stats or {}).plan]


def test_cost_puts_the_cheapest_expected_cost_first() -> None:
    # Given a fast-tier request with objective cost; When it is routed
    names = plan(JobRequest(prompt=FAST, objective="cost"))
    # Then the plan runs from the cheapest deployment of the tier to the dearest
    costs = [estimate(CATALOG.get(n), 12, 512).expected_cost_micro_usd for n in names]
    assert names[0] == "sim-gpt-4o-mini" and costs == sorted(costs)


def test_latency_follows_the_live_statistics() -> None:
    # Given live statistics in which the dearer fast deployment is much faster
    stats = {
        "sim-gpt-4o-mini": DeploymentStats(50, 900.0, 10.0, 0.0, 200.0),
        "sim-gpt-4.1": DeploymentStats(50, 100.0, 2.0, 0.0, 200.0),
    }
    # When a request asks for latency; Then the fast one comes first, cost still cheapest-first
    assert plan(JobRequest(prompt=FAST, objective="latency"), stats)[0] == "sim-gpt-4.1"
    assert plan(JobRequest(prompt=FAST, objective="cost"), stats)[0] == "sim-gpt-4o-mini"


def test_error_rate_makes_a_deployment_predicted_slower() -> None:
    # Given two equal speeds, one failing half its calls
    healthy = estimate(CATALOG.get("sim-gpt-4.1"), 10, 100, DeploymentStats(9, 100, 1, 0.0))
    flaky = estimate(CATALOG.get("sim-gpt-4.1"), 10, 100, DeploymentStats(9, 100, 1, 0.5))
    # Then the failing one is predicted twice as slow (its retries)
    assert flaky.predicted_latency_ms == pytest.approx(2 * healthy.predicted_latency_ms)


def test_quality_puts_the_strongest_first() -> None:
    assert plan(JobRequest(prompt=FAST, objective="quality"))[0] == "sim-gpt-4.1"


def test_max_cost_drops_dear_deployments_and_names_the_field_when_none_fit() -> None:
    # Given a limit only the cheap deployment meets at max_tokens=1000
    cheap = estimate(CATALOG.get("sim-gpt-4o-mini"), 20, 1000).max_cost_micro_usd
    request = JobRequest(prompt=FAST, max_tokens=1000, max_cost_usd=float(cheap) * 2 / 1e6)
    # Then the plan keeps only it
    assert plan(request) == ["sim-gpt-4o-mini"]
    # And a limit nothing meets is a 422 naming max_cost_usd
    with pytest.raises(ValidationFailed) as refused:
        plan(JobRequest(prompt=FAST, max_tokens=1000, max_cost_usd=1e-9))
    assert refused.value.field == "max_cost_usd"


def test_max_latency_keeps_only_fast_enough_deployments() -> None:
    stats = {
        "sim-gpt-4o-mini": DeploymentStats(50, 2000.0, 0.0, 0.0, 100.0),
        "sim-gpt-4.1": DeploymentStats(50, 300.0, 0.0, 0.0, 100.0),
    }
    assert plan(JobRequest(prompt=FAST, max_latency_ms=1000), stats) == ["sim-gpt-4.1"]
    with pytest.raises(ValidationFailed) as refused:
        plan(JobRequest(prompt=FAST, max_latency_ms=10), stats)
    assert refused.value.field == "max_latency_ms"


def test_the_routing_record_shows_expected_cost_and_predicted_latency() -> None:
    decision = route(JobRequest(prompt=FAST, objective="cost"), CATALOG, stats={})
    step = decision.record()[-1]
    assert step["step"] == "objective" and step["choice"] == "cost"
    assert "expected $" in step["reasons"][0] and "predicted" in step["reasons"][0]


def test_moments_fit_intercept_and_slope() -> None:
    # Given moving moments of calls whose latency is 120 ms + 8 ms per output token
    xs = [50.0, 100.0, 200.0, 400.0]
    ys = [120 + 8 * x for x in xs]
    n = len(xs)
    raw = {
        b"n": str(n).encode(),
        b"x": str(sum(xs) / n).encode(),
        b"y": str(sum(ys) / n).encode(),
        b"xx": str(sum(x * x for x in xs) / n).encode(),
        b"xy": str(sum(x * y for x, y in zip(xs, ys, strict=True)) / n).encode(),
        b"err": b"0.1",
    }
    # When they are read back as a latency model
    stats = stats_from_hash(raw)
    # Then the fit recovers the time to first token and the speed
    assert stats.ttft_ms == pytest.approx(120) and stats.ms_per_output_token == pytest.approx(8)
    assert stats.output_tokens_per_s == pytest.approx(125) and stats.error_rate == 0.1
