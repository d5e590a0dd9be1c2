"""The ``blend`` and ``tiered`` strong/weak scorers: behaviour, offline loading, exact rebuild."""

from __future__ import annotations

from importlib import resources

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.routing import problem
from orchestrator.routing.blend import ARTIFACT, BlendScorer
from orchestrator.routing.scorers import get_scorer
from tests.unit.shipped_scorers import (
    DATA,
    WORD_PROBLEM,
    hard_and_easy,
    score_offline,
    shipped,
)

POEM = "Write a short, warm poem for my grandmother's eightieth birthday party next week."


def test_a_multi_step_word_problem_outscores_a_greeting_and_explains_itself() -> None:
    # Given the shipped blend scorer
    # When it scores a multi-step word problem and a greeting
    # Then the problem needs the strong model more, and the reasons name both parts
    hard, _ = hard_and_easy("blend")
    assert hard.reasons[0].startswith("rules ")
    assert hard.reasons[1].startswith("word-problem model ")


def test_tiered_lifts_what_the_tier_model_calls_reasoning_and_leaves_fast_alone() -> None:
    # Given both scorers over the same fitted parts
    blend, tiered = get_scorer("blend"), get_scorer("tiered")
    # When they score a word problem (reasoning) and a request for a poem (fast)
    maths_blend, maths_tiered = blend.score(WORD_PROBLEM), tiered.score(WORD_PROBLEM)
    poem_blend, poem_tiered = blend.score(POEM), tiered.score(POEM)
    # Then only the reasoning prompt gains, and the reason says which tier decided it
    assert maths_tiered.value > maths_blend.value
    assert poem_tiered.value == poem_blend.value
    assert maths_tiered.reasons[-1].startswith("tier model: reasoning")
    assert poem_tiered.reasons[-1].startswith("tier model: fast")


def test_a_named_tier_is_taken_as_given_and_the_tier_model_is_not_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the tiered scorer, with the tier model made to fail if it is asked
    tiered = get_scorer("tiered")

    def asked(text: str) -> tuple[str, float]:
        raise AssertionError("the tier model was asked for a request that named its tier")

    monkeypatch.setattr("orchestrator.routing.blend._tier_call", asked)
    # When a word problem is scored for a request that named the fast tier, and one
    # that named the reasoning tier
    as_fast = tiered.score_in_tier(WORD_PROBLEM, "fast")
    as_reasoning = tiered.score_in_tier(WORD_PROBLEM, "reasoning")
    # Then only the reasoning request gets the tier's lift, and the reason says why
    assert as_reasoning.value > as_fast.value
    assert as_fast.value == get_scorer("blend").score(WORD_PROBLEM).value
    assert as_reasoning.reasons[-1] == "tier reasoning requested (+1.00)"


def test_the_problem_counts_read_a_bounded_window() -> None:
    # Given a 400,000-character prompt made of one repeated sentence
    text = "Ann has 3 apples and buys 2 more. " * 12_000
    # When its word-problem counts are taken
    found = problem.counts(text)
    # Then only the window was read (8,000 characters hold about 240 sentences)
    assert 200 < found["sents"] < 300
    assert len(problem.vector(found)) == len(problem.NAMES)


def test_it_loads_and_scores_with_sockets_blocked_and_without_scikit_learn() -> None:
    # Given a fresh interpreter that can open no socket
    # When it loads both shipped scorers and scores a prompt
    (blend_value, tiered_value), imported = score_offline(("blend", "tiered"), WORD_PROBLEM)
    # Then both score (tiered higher: a reasoning prompt), and neither scikit-learn nor
    # wordllama itself was imported
    assert 0.0 < blend_value < tiered_value < 1.0
    assert imported == []


def test_a_broken_artefact_is_refused_by_name() -> None:
    # Given artefacts with other features, short weights and a zero scale
    artefact = shipped(ARTIFACT)
    broken = {
        "features": {**artefact, "features": ["words"]},
        "shapes": {**artefact, "intercept": [0.0]},
        "not positive": {**artefact, "problem_gain": [0.2, 0.0]},
    }
    for problem_text, document in broken.items():
        # When each is loaded; Then a ConfigError names the problem
        with pytest.raises(ConfigError, match=f"invalid blend model.*{problem_text}"):
            BlendScorer(document, "broken.json")


@pytest.mark.skipif(not (DATA / "README.md").is_file(), reason=f"routing data not at {DATA}")
def test_the_training_script_rebuilds_the_shipped_artefact_byte_for_byte() -> None:
    pytest.importorskip("sklearn")
    from orchestrator.routing.train import blend as training

    # Given the shared data and the split rules
    outcomes = training.shared_outcomes(DATA)
    # When the artefact is built again (fit, standardizations, development figures)
    rebuilt = training.render(training.build(outcomes))
    # Then it is the shipped file, byte for byte
    artefact = resources.files("orchestrator.routing").joinpath("models", ARTIFACT)
    assert rebuilt == artefact.read_text("utf-8")
