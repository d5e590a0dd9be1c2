"""Rates get rate statistics: Wilson, Newcombe and Fisher, checked against scipy and statsmodels."""

from __future__ import annotations

import random

import pytest

from orchestrator.experiments.arm_stats import rate_difference, rate_interval, report
from orchestrator.experiments.rates import compare_rates, fisher_exact, wilson, z_test

scipy_stats = pytest.importorskip("scipy.stats")
proportion = pytest.importorskip("statsmodels.stats.proportion")

CASES = [
    (0, 2, 2, 2),
    (3, 3, 1, 3),
    (5, 20, 9, 20),
    (48, 100, 61, 100),
    (400, 1000, 436, 1000),
    (0, 50, 0, 50),
    (1, 1, 0, 7),
    (990, 1000, 999, 1000),
]


def test_two_perfect_arms_are_not_certainly_different() -> None:
    # Given two arms of two jobs each, every control job failed and every arm job succeeded
    found = rate_difference([0.0, 0.0], [1.0, 1.0])
    # Then the exact test's p is 1/3 (Welch's t said 0.0), so the gap is not significant
    assert found.p_value == pytest.approx(1 / 3)
    assert not found.significant
    assert found.low is not None and found.low < 1.0


def test_a_perfect_rate_has_a_real_interval() -> None:
    # Given three successes out of three
    found = rate_interval([1.0, 1.0, 1.0])
    # Then the interval is Wilson's [0.4385, 1], not the empty [1, 1]
    assert found.value == 1.0 and found.high == 1.0
    assert found.low == pytest.approx(0.4385, abs=1e-4)


@pytest.mark.parametrize(("x", "n"), [(0, 1), (3, 3), (1, 10), (37, 80), (999, 1000)])
def test_wilson_matches_statsmodels(x: int, n: int) -> None:
    want = proportion.proportion_confint(x, n, alpha=0.05, method="wilson")
    assert wilson(x, n) == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), CASES)
def test_newcombe_matches_statsmodels(x0: int, n0: int, x1: int, n1: int) -> None:
    diff, low, high, _ = compare_rates((x0, n0), (x1, n1))
    want = proportion.confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff")
    assert diff == pytest.approx(x1 / n1 - x0 / n0)
    assert (low, high) == pytest.approx(tuple(float(v) for v in want), abs=1e-9)


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), CASES)
def test_fisher_matches_scipy(x0: int, n0: int, x1: int, n1: int) -> None:
    table = [[x1, n1 - x1], [x0, n0 - x0]]
    want = scipy_stats.fisher_exact(table, alternative="two-sided").pvalue
    assert fisher_exact((x0, n0), (x1, n1)) == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), [(400, 1000, 436, 1000), (120, 300, 80, 300)])
def test_z_test_matches_statsmodels(x0: int, n0: int, x1: int, n1: int) -> None:
    from statsmodels.stats.proportion import proportions_ztest

    _, want = proportions_ztest([x1, x0], [n1, n0])
    assert z_test((x0, n0), (x1, n1)) == pytest.approx(float(want), rel=1e-9)


def test_exact_below_the_threshold_and_z_above() -> None:
    # Given small counts, the p-value is Fisher's; given large, the z-test's
    assert compare_rates((3, 10), (8, 10))[3] == pytest.approx(fisher_exact((3, 10), (8, 10)))
    big = ((400, 1000), (436, 1000))
    assert compare_rates(*big)[3] == pytest.approx(z_test(*big))


def test_the_report_uses_rate_statistics_for_rates() -> None:
    from orchestrator.experiments.arm_stats import JobOutcome

    rng = random.Random(5)
    outcomes = [
        JobOutcome(
            arm=arm,
            status="succeeded" if rng.random() < 0.9 else "failed",
            cost_micro_usd=10,
            latency_ms=100,
            fell_back=False,
        )
        for arm in ("a", "b")
        for _ in range(6)
    ]
    found = report(
        arms=["a", "b"],
        control="a",
        outcomes=outcomes,
        scores=[],
        admitted={"a": 6, "b": 6},
        paused={},
    )
    rate = found["arms"][0]["figures"]["success_rate"]
    a = [o for o in outcomes if o.arm == "a"]
    hits = sum(1 for o in a if o.status == "succeeded")
    assert (rate["low"], rate["high"]) == pytest.approx(wilson(hits, len(a)))
    gap = found["comparisons"][0]["differences"]["success_rate"]
    b_hits = sum(1 for o in outcomes if o.arm == "b" and o.status == "succeeded")
    assert gap["p_value"] == pytest.approx(fisher_exact((hits, 6), (b_hits, 6)))
