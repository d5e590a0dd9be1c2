"""``switchyard experiments report NAME --plot FILE.png``: each figure per arm, 95% interval.

matplotlib (the ``plot`` extra) is imported inside the function, so nothing else pays for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

PANELS = (
    ("success_rate", "success rate"),
    ("fallback_rate", "fallback rate"),
    ("cost_per_job_micro_usd", "cost per job (micro-USD)"),
    ("latency_p50_ms", "latency p50 (ms)"),
    ("latency_p95_ms", "latency p95 (ms)"),
    ("quality", "quality (feedback)"),
)


def _bars(arms: list[dict[str, Any]], metric: str) -> tuple[list[float], list[list[float]]]:
    """Bar heights and asymmetric error bars (0 where a figure has no interval).

    A bootstrap percentile interval need not hold its own point estimate (rounded
    figures, few values): the side it misses is drawn as 0, never negative.
    """
    values, below, above = [], [], []
    for arm in arms:
        found = arm["figures"][metric]
        value = found["value"] if found["value"] is not None else 0.0
        values.append(value)
        below.append(max(0.0, value - found["low"]) if found["low"] is not None else 0.0)
        above.append(max(0.0, found["high"] - value) if found["high"] is not None else 0.0)
    return values, [below, above]


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Draw one panel per figure: a bar per arm, its interval, significance against control."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'switchyard-llm[plot]'") from exc
    arms = report["arms"]
    labels = [a["arm"] + (" (paused)" if a["paused"] else "") for a in arms]
    starred = {
        (c["arm"], metric)
        for c in report["comparisons"]
        for metric, d in c["differences"].items()
        if d["significant"]
    }
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (metric, title) in zip(axes.flat, PANELS, strict=True):
        values, errors = _bars(arms, metric)
        colors = ["grey" if a["control"] else "tab:blue" for a in arms]
        ax.bar(labels, values, yerr=errors, capsize=6, color=colors)
        for i, arm in enumerate(arms):
            if (arm["arm"], metric) in starred:
                top = values[i] + errors[1][i]
                ax.annotate("*", (i, top), ha="center", va="bottom", fontsize=16)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    name = report["experiment"]["name"]
    figure.suptitle(f"experiment {name}: 95% intervals; * differs from control (p < 0.05)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
