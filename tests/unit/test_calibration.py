"""Calibration: a wanted share of strong calls becomes a threshold, predictably."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.routing import SCORERS, calibration
from orchestrator.routing.calibration import Calibration, quantiles


def test_quantiles_interpolate_like_numpy() -> None:
    # Given 0..10; When 5 quantiles are taken; Then they are evenly spaced
    assert quantiles(range(11), points=5) == (0.0, 2.5, 5.0, 7.5, 10.0)


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5, 0.8])
def test_the_threshold_sends_the_wanted_share_of_reference_prompts_to_strong(share: float) -> None:
    # Given a calibration built from 1,000 distinct scores
    scores = [i / 1000 for i in range(1000)]
    table = Calibration.from_scores("rules", scores, "test")
    # When the threshold for a strong share is asked for
    threshold = table.threshold_for(share)
    # Then about that share of the reference scores reach it
    reached = sum(s >= threshold for s in scores) / len(scores)
    assert reached == pytest.approx(share, abs=0.01)
    assert table.share_for(threshold) == pytest.approx(share, abs=0.02)


def test_the_ends_of_the_knob_mean_never_and_always() -> None:
    table = Calibration.from_scores("rules", [0.2, 0.4, 0.6], "test")
    # Then share 0 asks for more than any score, share 1 for nothing
    assert table.threshold_for(0.0) == 1.0
    assert table.threshold_for(1.0) == 0.0


def test_every_scorer_has_a_builtin_calibration() -> None:
    for name in SCORERS:
        table = calibration.builtin(name)
        assert table.scorer == name
        assert list(table.quantiles) == sorted(table.quantiles)
        assert "MMLU" in table.source


def test_a_saved_calibration_is_loaded_back(tmp_path: Path) -> None:
    # Given a calibration saved as route calibrate --save writes it
    table = Calibration.from_scores("length", [0.1, 0.5, 0.9], "my traffic")
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(table.to_json()))
    # When it is loaded for that scorer; Then it is the same table
    assert calibration.load(path, "length") == table
    # And asking it for another scorer is a config error
    with pytest.raises(ConfigError, match="no calibration for scorer 'rules'"):
        calibration.load(path, "rules")


def test_a_decreasing_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"scorer": "rules", "quantiles": [0.9, 0.1]}))
    with pytest.raises(ConfigError, match="not increasing"):
        calibration.load(path, "rules")
