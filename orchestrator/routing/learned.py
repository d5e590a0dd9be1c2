"""The ``learned`` scorer: two small logistic regressions shipped as a JSON artifact.

One model estimates P(weak model answers correctly), the other P(strong model
answers correctly), both from the ``complexity`` features. The score is the
expected gain of calling the strong model, mapped to [0, 1]:

    value = (P(strong right) - P(weak right) + 1) / 2

Run time is pure Python (a dot product per model). Training needs numpy and
scikit-learn (the ``learned`` extra) and lives in ``orchestrator.routing.train``;
the artifact records the data split it was fitted on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.routing.complexity import Complexity
from orchestrator.routing.scorer_base import Scored, Scorer, sigmoid

ARTIFACT = "learned.json"


@dataclass(frozen=True)
class Logistic:
    """One fitted logistic regression over standardized named features."""

    intercept: float
    coef: dict[str, float]

    def probability(self, z_features: dict[str, float]) -> float:
        total = self.intercept + sum(w * z_features[name] for name, w in self.coef.items())
        return sigmoid(total)


class LearnedScorer(Scorer):
    """Scores by the fitted gain P(strong right) - P(weak right); see the module docstring."""

    name = "learned"
    uses_held_in = True

    def __init__(self, artifact: dict[str, Any]) -> None:
        try:
            self.features: list[str] = list(artifact["features"])
            self.mean: dict[str, float] = dict(artifact["mean"])
            self.scale: dict[str, float] = dict(artifact["scale"])
            self.weak = Logistic(**artifact["weak_correct"])
            self.strong = Logistic(**artifact["strong_correct"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"invalid learned-scorer artifact: {exc}") from exc
        self.artifact = artifact

    @classmethod
    def load(cls, path: str | None = None) -> LearnedScorer:
        """The shipped artifact (``models/learned.json``), or one at ``path``."""
        if path is None:
            source = resources.files("orchestrator.routing").joinpath("models", ARTIFACT)
            text = source.read_text(encoding="utf-8")
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        return cls(json.loads(text))

    def score(self, text: str) -> Scored:
        raw = Complexity.of(text).vector()
        z = {n: (raw[n] - self.mean[n]) / (self.scale[n] or 1.0) for n in self.features}
        p_strong = self.strong.probability(z)
        p_weak = self.weak.probability(z)
        reasons = (
            f"P(strong right) {p_strong:.2f}",
            f"P(weak right) {p_weak:.2f}",
        )
        return Scored(round((p_strong - p_weak + 1.0) / 2.0, 4), reasons)
