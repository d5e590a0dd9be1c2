"""Calibration: turn "send about 30% of calls to the strong model" into a score threshold.

As RouteLLM does, the threshold for a wanted strong share ``s`` is the (1 - s)
quantile of a scorer's scores over reference prompts: on traffic like those
prompts, about ``s`` of the requests score at or above it. A calibration keeps
101 quantiles (every percentile), so it is a few hundred bytes of JSON.

The built-in calibrations (``models/calibration.json``) were computed on the
prompts of the MMLU training subjects; calibrate on your own traffic with
``switchyard route calibrate --data FILE --save calibration.json`` and point
``SWITCHYARD_ROUTER_CALIBRATION_PATH`` at the result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

BUILTIN = "calibration.json"
POINTS = 101


def quantiles(values: Iterable[float], points: int = POINTS) -> tuple[float, ...]:
    """``points`` evenly spaced quantiles (linear interpolation, as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no scores to calibrate on")
    last = len(ordered) - 1
    out = []
    for i in range(points):
        pos = last * i / (points - 1)
        low = int(pos)
        high = min(low + 1, last)
        out.append(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))
    return tuple(out)


@dataclass(frozen=True)
class Calibration:
    """A scorer's score quantiles on reference prompts, and where they came from."""

    scorer: str
    quantiles: tuple[float, ...]
    source: str

    @classmethod
    def from_scores(cls, scorer: str, scores: Iterable[float], source: str) -> Calibration:
        return cls(scorer, tuple(round(q, 6) for q in quantiles(scores)), source)

    def threshold_for(self, strong_share: float) -> float:
        """The score at or above which about ``strong_share`` of reference prompts fall."""
        if strong_share <= 0.0:
            return 1.0
        if strong_share >= 1.0:
            return 0.0
        pos = (1.0 - strong_share) * (len(self.quantiles) - 1)
        low = int(pos)
        high = min(low + 1, len(self.quantiles) - 1)
        span = self.quantiles[high] - self.quantiles[low]
        return round(self.quantiles[low] + span * (pos - low), 6)

    def share_for(self, threshold: float) -> float:
        """The share of reference prompts scoring at or above ``threshold`` (inverse)."""
        below = sum(1 for q in self.quantiles if q < threshold)
        return round(1.0 - below / len(self.quantiles), 3)

    def to_json(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "source": self.source, "quantiles": list(self.quantiles)}


def parse(document: dict[str, Any], scorer: str, where: str) -> Calibration:
    """The calibration for ``scorer`` from a saved document (one table or several)."""
    tables = document.get("calibrations", [document])
    for table in tables:
        if table.get("scorer") == scorer:
            qs = tuple(float(q) for q in table["quantiles"])
            if len(qs) < 2 or list(qs) != sorted(qs):
                raise ConfigError(f"calibration for {scorer!r} in {where} is not increasing")
            return Calibration(scorer, qs, str(table.get("source", where)))
    raise ConfigError(f"{where} has no calibration for scorer {scorer!r}")


@cache
def builtin(scorer: str) -> Calibration:
    """The shipped calibration for ``scorer``."""
    text = resources.files("orchestrator.routing").joinpath("models", BUILTIN).read_text("utf-8")
    return parse(json.loads(text), scorer, f"built-in {BUILTIN}")


def load(path: Path | None, scorer: str) -> Calibration:
    """The calibration in ``path`` (a file saved by ``route calibrate``), else the built-in."""
    if path is None:
        return builtin(scorer)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read calibration {path}: {exc}") from exc
    return parse(document, scorer, str(path))
