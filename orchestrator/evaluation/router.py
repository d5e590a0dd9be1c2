"""``switchyard eval router``: APGR and CPT of scorers and baselines, in one run.

Every run measures the baselines (``random``, ``length``) on exactly the same
prompts as the scorers under test. Before scoring, it drops:

- prompts in the exclusion files (e.g. RouteLLM's contaminated-prompt lists);
- prompts any evaluated scorer was developed or trained on (``Scorer.held_in``),
  so a figure is never reported on data that shaped the scorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.data import Outcome
from orchestrator.evaluation.metrics import Curve, curve, summary
from orchestrator.routing import calibration
from orchestrator.routing.scorer_base import Scorer
from orchestrator.routing.scorers import BASELINES, get_scorer

CHECKED_QUALITIES = (0.1, 0.3, 0.5)


@dataclass
class RouterReport:
    """Curves and figures of one evaluation run, ready to print as JSON or plot."""

    scorer: str
    outcomes: int
    excluded: dict[str, int]
    curves: dict[str, Curve] = field(default_factory=dict)
    strong_shares: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        main = self.curves[self.scorer]
        figures = {name: summary(found) for name, found in self.curves.items()}
        return {
            "n": self.outcomes,
            "scorer": self.scorer,
            **figures[self.scorer],
            "weak_quality": round(main.weak, 4),
            "strong_quality": round(main.strong, 4),
            "excluded": self.excluded,
            "scorers": figures,
            "calibrated_strong_share": self.strong_shares,
        }


def _kept(
    outcomes: Sequence[Outcome], excludes: frozenset[str], scorers: Sequence[Scorer]
) -> tuple[list[Outcome], dict[str, int]]:
    kept, dropped = [], {"excluded": 0, "held_in": 0}
    for item in outcomes:
        if item.prompt in excludes:
            dropped["excluded"] += 1
        elif any(s.held_in(item.prompt) for s in scorers):
            dropped["held_in"] += 1
        else:
            kept.append(item)
    return kept, dropped


def _calibration_check(name: str, scores: Sequence[float]) -> dict[str, float]:
    """The share that really went strong here at a few qualities (built-in calibration)."""
    try:
        table = calibration.builtin(name)
    except ConfigError:  # a scorer without a built-in calibration: nothing to check
        return {}
    out = {}
    for quality in CHECKED_QUALITIES:
        threshold = table.threshold_for(quality)
        out[f"quality {quality:g}"] = round(sum(s >= threshold for s in scores) / len(scores), 3)
    return out


def evaluate_router(
    outcomes: Sequence[Outcome],
    scorers: Sequence[str],
    *,
    excludes: frozenset[str] = frozenset(),
) -> RouterReport:
    """Score every kept prompt with each scorer (and the baselines) and build the curves."""
    names = list(dict.fromkeys([*scorers, *BASELINES]))
    instances = [get_scorer(n) for n in names]
    kept, dropped = _kept(outcomes, excludes, instances)
    if not kept:
        raise ValueError("no prompts left to evaluate after exclusions")
    report = RouterReport(names[0], len(kept), dropped)
    weak = [o.weak for o in kept]
    strong = [o.strong for o in kept]
    for scorer in instances:
        scores = [scorer.score(o.prompt).value for o in kept]
        report.curves[scorer.name] = curve(scores, weak, strong)
        report.strong_shares[scorer.name] = _calibration_check(scorer.name, scores)
    return report
