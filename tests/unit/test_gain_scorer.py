"""The ``gain`` strong/weak scorer: shipped artefact, offline loading, and exact rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.routing.gain import ARTIFACT, GainScorer
from orchestrator.routing.scorers import get_scorer

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"
WORD_PROBLEM = (
    "A bakery sells 48 muffins on Monday and twice as many on Tuesday. On Wednesday it sells "
    "a third of Tuesday's muffins, and each muffin costs $3.50. Half of the money pays the "
    "rent, and the rest is shared equally among 4 workers. How much does each worker get?"
)

OFFLINE = """
import socket, sys
def blocked(*args, **kwargs):
    raise OSError("network blocked")
socket.socket.connect = blocked
socket.socket.connect_ex = blocked
socket.create_connection = blocked
socket.getaddrinfo = blocked
from orchestrator.routing.scorers import get_scorer
scored = get_scorer("gain").score(sys.argv[1])
print(scored.value, "sklearn" in sys.modules, "wordllama" in sys.modules)
"""


def _shipped() -> dict[str, object]:
    text = resources.files("orchestrator.routing").joinpath("models", ARTIFACT).read_text("utf-8")
    document: dict[str, object] = json.loads(text)
    return document


def test_a_multi_step_word_problem_outscores_a_greeting() -> None:
    # Given the shipped gain scorer from the registry
    scorer = get_scorer("gain")
    # When it scores a multi-step maths word problem and a greeting
    hard, easy = scorer.score(WORD_PROBLEM), scorer.score("hi, how are you today?")
    # Then the word problem needs the strong model more, and both explain themselves
    assert 0.0 <= easy.value < hard.value <= 1.0
    assert hard.reasons[0].startswith("P(strong better)")
    assert any("quantities" in r or "topic" in r for r in hard.reasons)


def test_it_loads_and_scores_with_sockets_blocked_and_without_scikit_learn() -> None:
    # Given a fresh interpreter that can open no socket
    # When it loads the shipped scorer and scores a prompt
    found = subprocess.run(
        [sys.executable, "-c", OFFLINE, WORD_PROBLEM], capture_output=True, text=True, timeout=120
    )
    # Then it scores, and neither scikit-learn nor wordllama itself was imported
    assert found.returncode == 0, found.stderr
    value, sklearn_loaded, wordllama_loaded = found.stdout.split()
    assert 0.0 < float(value) < 1.0
    assert (sklearn_loaded, wordllama_loaded) == ("False", "False")


def test_a_broken_or_foreign_artefact_is_refused_by_name(tmp_path: Path) -> None:
    # Given an artefact trained with another encoder, and one with missing weights
    artefact = _shipped()
    foreign = {**artefact, "encoder": {"encoder": "other", "dim": 384, "window": [1, 1]}}
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    (tmp_path / "partial.json").write_text(json.dumps({**artefact, "intercept": [0.0]}))
    # When they are loaded
    # Then each is a ConfigError naming the file and the problem
    with pytest.raises(ConfigError, match=r"foreign\.json.*encoder"):
        GainScorer.load(tmp_path / "foreign.json")
    with pytest.raises(ConfigError, match=r"partial\.json.*shapes"):
        GainScorer.load(tmp_path / "partial.json")


@pytest.mark.skipif(not (DATA / "README.md").is_file(), reason=f"routing data not at {DATA}")
def test_the_training_script_rebuilds_the_shipped_weights_exactly() -> None:
    pytest.importorskip("sklearn")
    from orchestrator.routing.train import gain as training

    # Given the shared data and the split rules
    outcomes = training.shared_outcomes(DATA)
    # When the scorer is fitted again (the same deterministic fit the script runs)
    x = training.matrix([o.prompt for o in outcomes])
    rebuilt = training.fit_gain(x, training.labels(outcomes), training.row_weights(outcomes))
    # Then every weight equals the shipped artefact's
    shipped = _shipped()
    assert len(outcomes) == shipped["training"]["rows"]  # type: ignore[index]
    assert rebuilt == {k: v for k, v in shipped.items() if k != "training"}


def _traffic_rows() -> list[dict[str, object]]:
    """120 scored prompts: the strong model wins on the long sums; both do the short asks."""
    rows: list[dict[str, object]] = []
    for i in range(60):
        terms = " then ".join(f"add {i + k} and take a third of it" for k in range(2 + i % 8))
        hard = i % 8 >= 3
        rows.append(
            {
                "prompt": f"Compute: {terms}. What is left?",
                "tier": "reasoning",
                "weak_score": 0 if hard else 1,
                "strong_score": 1,
            }
        )
        easy = f"hello number {i}, how is your day going?"
        code = f"Write a Python function named f{i} that returns {i}."
        rows.append(
            {
                "prompt": easy if i % 2 else code,
                "tier": "fast" if i % 2 else "code",
                "weak_score": 1,
                "strong_score": 1 - (i % 7 == 0),
            }
        )
    return rows


def test_route_train_with_scores_retrains_gain_into_the_model_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    # Given a user's JSONL whose rows carry a tier and both models' scores
    data, out = tmp_path / "traffic.jsonl", tmp_path / "model.json"
    data.write_text("".join(json.dumps(r) + "\n" for r in _traffic_rows()), encoding="utf-8")
    # When the router is retrained on it
    args = ["route", "train", "--data", str(data), "--out", str(out), "--no-corpus", "--json"]
    result = CliRunner().invoke(app, args)
    # Then the model file holds a gain scorer fitted on the 120 scored rows, with its figures
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["gain"]["rows"] == 120
    assert summary["gain"]["development"]["retrained gain (5-fold cv)"]["apgr"] > 0.5
    # And SWITCHYARD_ROUTER_MODEL_PATH's file gives the retrained scorer, not the shipped one
    retrained = GainScorer.configured(out)
    assert retrained.origin.endswith("(gain)") and retrained.training["rows"] == 120
    assert GainScorer.configured(None).origin == f"(shipped {ARTIFACT})"
