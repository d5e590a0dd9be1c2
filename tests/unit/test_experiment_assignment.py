"""Experiment arms: deterministic weighted assignment, arm strategies, specs, guardrail, judge."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError, ValidationFailed
from orchestrator.core.experiment_specs import ArmSpec, ExperimentSpec, GuardrailSpec
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.experiments.assignment import (
    JUDGE_KEY,
    arm_request,
    bucket,
    check_spec,
    pick_arm,
    policy_for,
)
from orchestrator.experiments.guardrail import breaches
from orchestrator.experiments.judge import graded_job, grading_request, parse_score, sampled
from orchestrator.experiments.records import ArmCounts
from orchestrator.routing import StrengthPolicy, route

SETTINGS = Settings()
ARMS = [("a", 1.0), ("b", 3.0)]


def test_assignment_is_a_pure_function_of_experiment_and_unit() -> None:
    # Given the same experiment and unit, computed twice; Then the same bucket and arm
    assert bucket("exp", "user-1") == bucket("exp", "user-1")
    assert pick_arm("exp", "user-1", ARMS, control="a") == pick_arm(
        "exp", "user-1", ARMS, control="a"
    )
    # And another experiment reshuffles units independently
    arms_x = [pick_arm("x", f"u{i}", ARMS, control="a") for i in range(2000)]
    arms_y = [pick_arm("y", f"u{i}", ARMS, control="a") for i in range(2000)]
    assert 0.55 < sum(x == y for x, y in zip(arms_x, arms_y, strict=True)) / 2000 < 0.70


def test_weights_set_the_shares() -> None:
    counts = Counter(pick_arm("weights", f"unit-{i}", ARMS, control="a") for i in range(20_000))
    assert counts["b"] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_a_paused_arm_sends_its_units_to_control() -> None:
    units = [f"u{i}" for i in range(500)]
    before = {u: pick_arm("p", u, ARMS, control="a") for u in units}
    after = {u: pick_arm("p", u, ARMS, control="a", paused=frozenset({"b"})) for u in units}
    assert set(after.values()) == {"a"}
    assert any(v == "b" for v in before.values())


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ArmSpec(name="x", threshold=0.5, quality=0.3)
    with pytest.raises(ValidationError, match="unique"):
        ExperimentSpec(name="e", arms=[ArmSpec(name="a"), ArmSpec(name="a")])
    with pytest.raises(ValidationError, match="control"):
        ExperimentSpec(name="e", arms=[ArmSpec(name="a"), ArmSpec(name="b")], control="c")
    with pytest.raises(ValidationError):
        ExperimentSpec(name="e", arms=[ArmSpec(name="a")])
    catalog = load_catalog(SETTINGS)
    bad = ExperimentSpec(
        name="e", arms=[ArmSpec(name="a"), ArmSpec(name="b", deployments=["nope"])]
    )
    with pytest.raises(ValidationFailed) as caught:
        check_spec(bad, catalog, SETTINGS)
    assert caught.value.field == "arms[1].deployments"
    scorer = ExperimentSpec(name="e", arms=[ArmSpec(name="a"), ArmSpec(name="b", scorer="zzz")])
    with pytest.raises(ValidationFailed) as caught:
        check_spec(scorer, catalog, SETTINGS)
    assert caught.value.field == "arms[1].scorer"


def test_arm_strategies_change_the_strong_weak_decision() -> None:
    catalog = load_catalog(SETTINGS)
    base = StrengthPolicy.from_settings(SETTINGS)
    request = JobRequest(prompt="What is the capital of Peru?")
    always = policy_for(ArmSpec(name="s", quality=1.0), base, SETTINGS)
    never = policy_for(ArmSpec(name="w", threshold=1.0), base, SETTINGS)
    low = policy_for(ArmSpec(name="t", threshold=0.0), base, SETTINGS)
    other = policy_for(ArmSpec(name="r", scorer="length"), base, SETTINGS)
    assert route(request, catalog, always).strength.choice == "strong"
    assert route(request, catalog, low).strength.choice == "strong"
    assert route(request, catalog, never).strength.threshold == 1.0
    assert route(request, catalog, other).strength.scorer == "length"
    strong_plan = route(request, catalog, always).plan
    assert strong_plan[0].strength >= strong_plan[-1].strength


def test_guardrail_breaches() -> None:
    limits = GuardrailSpec(max_error_rate_increase=0.1, max_cost_ratio=2.0, min_jobs=20)
    good = ArmCounts(jobs=40, failed_jobs=0, calls=40, failed_calls=0, cost_micro_usd=400)
    flaky = ArmCounts(jobs=40, failed_jobs=2, calls=80, failed_calls=40, cost_micro_usd=400)
    dear = ArmCounts(jobs=40, failed_jobs=0, calls=40, failed_calls=0, cost_micro_usd=1200)
    young = ArmCounts(jobs=5, failed_jobs=5, calls=5, failed_calls=5, cost_micro_usd=0)
    found = breaches(
        {"c": good, "f": flaky, "d": dear, "y": young}, control="c", limits=limits, skip=set()
    )
    assert set(found) == {"f", "d"}
    assert "error rate 0.500" in found["f"] and "cost per job" in found["d"]
    assert breaches({"c": good, "f": flaky}, control="c", limits=limits, skip={"f"}) == {}
    early = ArmCounts(jobs=10)
    assert breaches({"c": early, "f": flaky}, control="c", limits=limits, skip=set()) == {}
    # Calls count before their jobs finish (an arm whose jobs wait on an open breaker)
    waiting = ArmCounts(jobs=0, calls=24, failed_calls=13)
    assert set(breaches({"c": good, "w": waiting}, control="c", limits=limits, skip=set())) == {"w"}


def test_judge_helpers() -> None:
    share = sum(sampled(f"job_{i}", 0.2) for i in range(5000)) / 5000
    assert share == pytest.approx(0.2, abs=0.02)
    assert not sampled("job_1", 0.0)
    grading = grading_request("job_x", {"prompt": "2+2?"}, "4")
    assert grading.tier is Tier.REASONING and grading.metadata[JUDGE_KEY] == "job_x"
    assert "2+2?" in grading.prompt_text() and "Score it from 0 to 1" in (grading.system or "")
    assert graded_job(grading.custom_id) == "job_x" and graded_job("other") is None
    assert parse_score('{"score": 1.7, "reason": "x"}') == 1.0
    assert parse_score('{"score": 0.25}') == 0.25
    assert parse_score("not json") is None


def test_catalog_declares_experiments(tmp_path: Path) -> None:
    text = load_catalog(SETTINGS).model_dump(mode="json")
    text["experiments"] = [
        {"name": "cheap", "tenant": "acme", "arms": [{"name": "a"}, {"name": "b", "quality": 1}]}
    ]
    path = tmp_path / "catalog.yaml"
    import yaml

    path.write_text(yaml.safe_dump(text))
    catalog = load_catalog(Settings(catalog_path=path))
    (entry,) = catalog.experiments
    assert entry.tenant == "acme" and entry.arms[1].quality == 1.0
    text["experiments"][0]["arms"] = [{"name": "only"}]
    path.write_text(yaml.safe_dump(text))
    with pytest.raises(ConfigError):
        load_catalog(Settings(catalog_path=path))


def test_an_arm_sets_quality_and_objective_over_the_request() -> None:
    request = JobRequest(prompt="hi", quality=0.1, objective="latency")
    changed, reasons = arm_request(ArmSpec(name="a", quality=0.9, objective="cost"), request)
    assert changed.quality == 0.9 and changed.objective == "cost" and len(reasons) == 2
    fixed, _ = arm_request(ArmSpec(name="t", threshold=0.4), request)
    assert fixed.quality is None  # the arm's fixed threshold decides
    same, none = arm_request(ArmSpec(name="plain"), request)
    assert same is request and none == []
