"""The experiment report's statistics: intervals, Welch's test, bootstrap, and the report shape."""

from __future__ import annotations

import random

import pytest

from orchestrator.experiments.arm_stats import (
    JobOutcome,
    bootstrap_difference,
    bootstrap_percentile,
    mean_interval,
    percentile,
    report,
    t_critical,
    t_two_sided_p,
    welch,
)


def test_student_t_matches_tables() -> None:
    # Given published two-sided 95% critical values of Student's t
    # Then ours agree to three decimals, and the p-value at them is 0.05
    assert t_critical(10) == pytest.approx(2.228, abs=1e-3)
    assert t_critical(1) == pytest.approx(12.706, abs=1e-3)
    assert t_critical(1e6) == pytest.approx(1.960, abs=1e-3)
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-3)
    assert t_two_sided_p(0.0, 7) == pytest.approx(1.0)


def test_welch_known_example() -> None:
    # Given two samples with equal variances 2.5 and means 3 and 4 (t = 1, df = 8)
    found = welch([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    # Then the difference is +1, p is 0.3466 (tables), not significant, interval contains 0
    assert found.diff == pytest.approx(1.0)
    assert found.p_value == pytest.approx(0.3466, abs=1e-3)
    assert not found.significant
    assert found.low is not None and found.high is not None
    assert found.low < 0 < found.high
    assert found.high - 1.0 == pytest.approx(2.306, abs=1e-3)  # t(0.975, 8) x se 1


def test_welch_finds_a_real_shift_with_its_sign_and_not_a_null_one() -> None:
    rng = random.Random(3)
    control = [rng.gauss(100, 20) for _ in range(500)]
    shifted = [rng.gauss(110, 20) for _ in range(500)]
    same = [rng.gauss(100, 20) for _ in range(500)]
    up = welch(control, shifted)
    assert up.significant and up.diff is not None and up.diff > 0
    assert up.low is not None and up.low > 0
    down = welch(shifted, control)
    assert down.significant and down.diff is not None and down.diff < 0
    assert not welch(control, same).significant


def test_degenerate_samples() -> None:
    assert welch([5, 5, 5], [5, 5, 5]).significant is False
    assert welch([5, 5, 5], [7, 7, 7]).significant is True
    assert welch([1], [2, 3]).p_value is None
    assert mean_interval([]).value is None
    assert mean_interval([4.0]).low is None
    one = mean_interval([1.0, 1.0, 1.0, 1.0])
    assert (one.value, one.low, one.high) == (1.0, 1.0, 1.0)


def test_percentiles_and_bootstrap() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    found = bootstrap_percentile(values, 50)
    assert found.low is not None and found.high is not None
    assert found.low < 50.5 < found.high
    rng = random.Random(5)
    slow = [rng.expovariate(1 / 120) for _ in range(400)]
    fast = [rng.expovariate(1 / 60) for _ in range(400)]
    gap = bootstrap_difference(fast, slow, 50)
    assert gap.significant and gap.diff is not None and gap.diff > 0
    assert not bootstrap_difference(fast, list(reversed(fast)), 50).significant


def test_report_shape_and_figures() -> None:
    # Given two arms, one of which falls back and costs more, and a few scores
    outcomes = [JobOutcome("a", "succeeded", 10, 100, False) for _ in range(30)]
    outcomes += [JobOutcome("b", "succeeded", 30, 100, True) for _ in range(29)]
    outcomes += [JobOutcome("b", "failed", 0, None, False)]
    found = report(
        arms=["a", "b"],
        control="a",
        outcomes=outcomes,
        scores=[("a", 1.0), ("a", 0.5), ("b", 0.0)],
        admitted={"a": 31, "b": 30},
        paused={"b": {"reason": "test"}},
    )
    a, b = found["arms"]
    assert a["control"] and a["admitted"] == 31 and a["finished"] == 30
    assert b["paused"] == {"reason": "test"}
    assert b["figures"]["success_rate"]["value"] == pytest.approx(29 / 30)
    assert b["figures"]["fallback_rate"]["value"] == pytest.approx(1.0)
    assert b["figures"]["cost_per_job_micro_usd"]["value"] == pytest.approx(29 * 30 / 30)
    assert a["figures"]["quality"]["value"] == pytest.approx(0.75)
    assert a["figures"]["latency_p95_ms"]["value"] == pytest.approx(100)
    (diffs,) = found["comparisons"]
    assert diffs["arm"] == "b" and diffs["control"] == "a"
    assert diffs["differences"]["cost_per_job_micro_usd"]["significant"]
    assert diffs["differences"]["cost_per_job_micro_usd"]["diff"] == pytest.approx(19.0)
    assert diffs["differences"]["quality"]["p_value"] is None  # one score in b
