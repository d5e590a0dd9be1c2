"""The experiment report's plot: bars and error bars from a report's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.experiments.arm_plot import _bars, plot_report


def arm(name: str, value: float, low: float | None, high: float | None) -> dict:
    figure = {"value": value, "low": low, "high": high}
    return {"arm": name, "control": name == "control", "figures": {"latency_p50_ms": figure}}


def test_an_interval_that_misses_its_estimate_draws_no_negative_error_bar() -> None:
    # Given a percentile whose bootstrap interval lies wholly above it (few values)
    arms = [arm("control", 100.0, 90.0, 110.0), arm("b", 50.0, 52.0, 70.0)]
    # When the bars are computed
    values, (below, above) = _bars(arms, "latency_p50_ms")
    # Then the side the interval misses is 0, the other side the distance to the bound
    assert values == [100.0, 50.0]
    assert below == [10.0, 0.0] and above == [10.0, 20.0]


def test_the_report_with_such_an_interval_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from orchestrator.experiments.arm_plot import PANELS

    # Given a report where one arm's interval misses its estimate on every panel
    arms: list[dict] = [
        {"arm": a, "control": a == "control", "paused": False, "figures": {}}
        for a in ("control", "b")
    ]
    for metric, _ in PANELS:
        arms[0]["figures"][metric] = {"value": 1.0, "low": 0.5, "high": 1.5}
        arms[1]["figures"][metric] = {"value": 1.0, "low": 1.2, "high": 1.6}
    report = {"experiment": {"name": "x"}, "arms": arms, "comparisons": []}
    # When it is plotted, Then a PNG is written (matplotlib refused negative bars)
    plot_report(report, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
