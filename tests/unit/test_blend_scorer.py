"""The ``blend`` and ``tiered`` strong/weak scorers: behaviour, offline loading, exact rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.routing import problem
from orchestrator.routing.blend import ARTIFACT, BlendScorer
from orchestrator.routing.scorers import get_scorer

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"
WORD_PROBLEM = (
    "A bakery sells 48 muffins on Monday and twice as many on Tuesday. On Wednesday it sells "
    "a third of Tuesday's muffins, and each muffin costs $3.50. Half of the money pays the "
    "rent, and the rest is shared equally among 4 workers. How much does each worker get?"
)
POEM = "Write a short, warm poem for my grandmother's eightieth birthday party next week."

OFFLINE = """
import socket, sys
def blocked(*args, **kwargs):
    raise OSError("network blocked")
socket.socket.connect = blocked
socket.socket.connect_ex = blocked
socket.create_connection = blocked
socket.getaddrinfo = blocked
from orchestrator.routing.scorers import get_scorer
blend = get_scorer("blend").score(sys.argv[1])
print(blend.value)
tiered = get_scorer("tiered").score(sys.argv[1])
print(tiered.value, "sklearn" in sys.modules, "wordllama" in sys.modules)
"""


def _shipped() -> dict[str, object]:
    text = resources.files("orchestrator.routing").joinpath("models", ARTIFACT).read_text("utf-8")
    document: dict[str, object] = json.loads(text)
    return document


def test_a_multi_step_word_problem_outscores_a_greeting_and_explains_itself() -> None:
    # Given the shipped blend scorer
    scorer = get_scorer("blend")
    # When it scores a multi-step word problem and a greeting
    hard, easy = scorer.score(WORD_PROBLEM), scorer.score("hi, how are you today?")
    # Then the problem needs the strong model more, and the reasons name both parts
    assert 0.0 <= easy.value < hard.value <= 1.0
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
    found = subprocess.run(
        [sys.executable, "-c", OFFLINE, WORD_PROBLEM], capture_output=True, text=True, timeout=120
    )
    # Then both score (tiered higher: a reasoning prompt), and neither scikit-learn nor
    # wordllama itself was imported
    assert found.returncode == 0, found.stderr
    blend_value, (tiered_value, sklearn_loaded, wordllama_loaded) = (
        line.split() for line in found.stdout.splitlines()
    )
    assert 0.0 < float(blend_value[0]) < float(tiered_value) < 1.0
    assert (sklearn_loaded, wordllama_loaded) == ("False", "False")


def test_a_broken_artefact_is_refused_by_name() -> None:
    # Given artefacts with other features, short weights and a zero scale
    artefact = _shipped()
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
    shipped = resources.files("orchestrator.routing").joinpath("models", ARTIFACT)
    assert rebuilt == shipped.read_text("utf-8")
