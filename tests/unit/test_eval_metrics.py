"""APGR, CPT and the quality curve, on data small enough to check by hand."""

from __future__ import annotations

import pytest

from orchestrator.evaluation.metrics import curve, summary

# Four prompts: the weak model gets 0 and 1 right, the strong model 0, 1 and 2.
WEAK = [1.0, 1.0, 0.0, 0.0]
STRONG = [1.0, 1.0, 1.0, 0.0]  # only prompt 2 gains from the strong model


def test_an_oracle_recovers_the_whole_gap_with_the_first_call() -> None:
    # Given scores that put the one prompt that gains first
    found = curve([0.1, 0.2, 0.9, 0.3], WEAK, STRONG)
    # Then PGR is 1 from a quarter of strong calls on
    assert found.pgr() == (0.0, 1.0, 1.0, 1.0, 1.0)
    assert found.cpt(0.5) == pytest.approx(0.125)
    # And APGR is the area: a ramp over the first quarter, then 1
    assert found.apgr() == pytest.approx(0.875)


def test_a_constant_scorer_is_the_random_router_in_expectation() -> None:
    # Given every prompt with the same score: one block, routed together
    found = curve([0.5] * 4, WEAK, STRONG)
    # Then the curve is the straight line from weak to strong: APGR 0.5, CPT(x) = x
    assert found.apgr() == pytest.approx(0.5)
    assert found.cpt(0.5) == pytest.approx(0.5)
    assert found.cpt(0.8) == pytest.approx(0.8)


def test_a_reversed_scorer_scores_below_random() -> None:
    found = curve([0.9, 0.8, 0.1, 0.7], WEAK, STRONG)
    apgr = found.apgr()
    assert apgr is not None and apgr < 0.5
    assert found.cpt(0.5) == pytest.approx(0.875)


def test_ties_are_routed_as_one_block() -> None:
    # Given the gaining prompt tied with a non-gaining one at the top
    found = curve([0.9, 0.1, 0.9, 0.2], WEAK, STRONG)
    # Then the curve reaches the half-way point only after both are routed
    assert found.shares == (0.0, 0.5, 0.75, 1.0)
    assert found.qualities[1] == pytest.approx(0.75)
    assert found.quality_at(0.25) == pytest.approx(0.625)


def test_no_gap_has_no_apgr() -> None:
    found = curve([0.1, 0.2], [1.0, 0.0], [1.0, 0.0])
    assert summary(found) == {"apgr": None, "cpt50": None, "cpt80": None}


def test_numeric_quality_works_like_correctness() -> None:
    # Given judge scores from 1 to 10 rather than 0/1
    found = curve([0.9, 0.1], [4.0, 8.0], [9.0, 8.0])
    assert found.weak == 6.0 and found.strong == 8.5
    assert found.apgr() == pytest.approx(0.75)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        curve([0.1], [1.0, 0.0], [1.0, 0.0])
