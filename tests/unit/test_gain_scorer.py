"""The ``gain`` strong/weak scorer: shipped artefact, offline loading, and exact rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.routing.blend import ARTIFACT as BLEND_ARTIFACT
from orchestrator.routing.blend import BlendScorer
from orchestrator.routing.gain import ARTIFACT, GainScorer
from tests.unit.shipped_scorers import DATA, WORD_PROBLEM, hard_and_easy, score_offline, shipped


def test_a_multi_step_word_problem_outscores_a_greeting() -> None:
    # Given the shipped gain scorer from the registry
    # When it scores a multi-step maths word problem and a greeting
    # Then the word problem needs the strong model more, and both explain themselves
    hard, _ = hard_and_easy("gain")
    assert hard.reasons[0].startswith("P(strong better)")
    assert any("quantities" in r or "topic" in r for r in hard.reasons)


def test_it_loads_and_scores_with_sockets_blocked_and_without_scikit_learn() -> None:
    # Given a fresh interpreter that can open no socket
    # When it loads the shipped scorer and scores a prompt
    [value], imported = score_offline(("gain",), WORD_PROBLEM)
    # Then it scores, and neither scikit-learn nor wordllama itself was imported
    assert 0.0 < value < 1.0
    assert imported == []


def test_a_broken_or_foreign_artefact_is_refused_by_name(tmp_path: Path) -> None:
    # Given an artefact trained with another encoder, and one with missing weights
    artefact = shipped(ARTIFACT)
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
    # Given the shared data and the split rules; When the training command runs again
    # with --check, as a user runs it (in a process of its own, which holds OpenBLAS to
    # the kernels the artefact was fitted with, whatever the x86-64 CPU)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    command = [sys.executable, "-m", "orchestrator.routing.train.gain", "--data", str(DATA)]
    done = subprocess.run(
        [*command, "--check"], env=env, capture_output=True, text=True, timeout=600
    )
    # Then the file it would write, weights and development figures, is the shipped one
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"rebuilt_identical": True}


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


def test_route_train_with_scores_retrains_gain_and_blend_into_the_model_file(
    tmp_path: Path,
) -> None:
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
    # And the default scorer's word-problem model (blend, tiered) is refitted there too,
    # with cross-validated figures beside the shipped tiered scorer's on the same rows
    figures = summary["blend"]["development"]
    assert summary["blend"]["rows"] == 120
    assert {"retrained tiered (5-fold cv)", "tiered", "length"} <= set(figures)
    assert figures["retrained blend (5-fold cv)"]["apgr"] > 0.5
    tiered = BlendScorer.configured(out, tiered=True)
    assert tiered.origin == f"{out} (blend)" and tiered.training["rows"] == 120
    shipped = BlendScorer.configured(None, tiered=True)
    assert shipped.origin == f"(shipped {BLEND_ARTIFACT})"
    hard = "Compute: add 1 and take a third of it then add 2 and take a third of it then add 3"
    assert tiered.score(hard).value != shipped.score(hard).value


def test_a_model_file_with_a_broken_scorer_part_is_refused_by_name(tmp_path: Path) -> None:
    # Given model files whose gain and blend parts are not what their scorers read,
    # and one that is not JSON
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gain": {"format": "x"}, "blend": {"format": "x"}}))
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    # When the scorers are configured from them
    # Then each is a ConfigError naming the file (and the part), never the shipped scorer
    with pytest.raises(ConfigError, match=r"bad\.json \(blend\).*format"):
        BlendScorer.configured(bad, tiered=True)
    with pytest.raises(ConfigError, match=r"bad\.json \(gain\)"):
        GainScorer.configured(bad, prior=False)
    with pytest.raises(ConfigError, match=r"cannot read router model .*garbled\.json"):
        BlendScorer.configured(garbled)
