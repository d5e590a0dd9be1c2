"""The quality-vs-strong-share plot of ``eval router --plot``; needs the ``plot`` extra.

matplotlib is imported here, inside the function, so nothing else pays for it.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.router import RouterReport


def plot_router(report: RouterReport, path: Path, title: str = "") -> None:
    """Draw each scorer's curve, the random router's line and both models' quality."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'switchyard-llm[plot]'") from exc
    main = report.curves[report.scorer]
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, found in report.curves.items():
        if name == "random":
            continue
        apgr = found.apgr()
        label = name if apgr is None else f"{name} (APGR {apgr:.3f})"
        axes.plot([s * 100 for s in found.shares], found.qualities, label=label)
    axes.plot([0, 100], [main.weak, main.strong], "k:", label="random (expected, APGR 0.5)")
    axes.axhline(main.weak, color="grey", linestyle="--", label="weak model only")
    axes.axhline(main.strong, color="red", linestyle="--", label="strong model only")
    axes.set_xlabel("strong-model calls (%)")
    axes.set_ylabel("quality (mean outcome)")
    axes.set_title(title or f"router quality vs strong share (n={report.outcomes})")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
