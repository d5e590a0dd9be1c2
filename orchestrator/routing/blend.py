"""The ``blend`` and ``tiered`` scorers: the rules, a fitted word-problem model, a tier prior.

    z_rules   = the ``rules`` scorer's logit, standardized
    gain      = P(strong better) - P(weak better) of a three-outcome logistic regression
                over the ``problem`` counts, fitted on GSM8K's development half only
    z_problem = gain, standardized
    blend     = sigmoid(z_rules + z_problem)
    tiered    = sigmoid(z_rules + z_problem + TIER_WEIGHT * [tier model: reasoning or code])

Both standardizations (mean and scale) are taken over the development prompts
(MMLU training subjects and GSM8K's development half), so the two parts weigh the
same there. The word-problem model never saw an MMLU prompt, yet it ranks the
MMLU training subjects better than ``rules`` does (ROUTING.md has the figures).

The tier prior is set by hand, not fitted, on the premise that on chat traffic
(MT-Bench-like) the strong model's advantage is largest on maths, reasoning and
code, which neither MMLU nor GSM8K can test (the tier model calls almost every
GSM8K prompt ``reasoning``; on MMLU the strong model gains as much on the prompts
it calls ``fast`` as on the others). Its weight is the
largest that left both development sets no worse (0.25 to 1 all did; 2 cost MMLU).

Run time: pure Python for ``blend`` (regexes and a 3 x 24 dot product); ``tiered``
adds the tier model's probabilities, which ``route()`` has already computed for
the same text (the encoder remembers a thread's last prompt). Fitting (scikit-learn)
lives in ``train/blend.py``; the artefact is ``models/blend.json``.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from operator import mul
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.routing import problem
from orchestrator.routing.rules_scorer import RulesScorer
from orchestrator.routing.scorer_base import Scored, Scorer, sigmoid, trained_part

FORMAT = "switchyard-blend-model/1"
ARTIFACT = "blend.json"
CLASSES = ("weak_better", "tie", "strong_better")
TIER_WEIGHT = 1.0
SHOWN_COUNTS = 2


def _standard(x: float, mean: float, scale: float) -> float:
    return (x - mean) / scale


class BlendScorer(Scorer):
    """Scores by the rules and the word-problem model (and the tier prior); see the module."""

    uses_held_in = True

    def __init__(self, artefact: dict[str, Any], origin: str, *, tiered: bool = False) -> None:
        self.tiered = tiered
        self.name = "tiered" if tiered else "blend"
        self.rules = RulesScorer()
        try:
            if artefact["format"] != FORMAT:
                raise ValueError(f"format {artefact['format']!r}, expected {FORMAT!r}")
            if list(artefact["features"]) != list(problem.NAMES):
                raise ValueError("features differ from orchestrator.routing.problem.NAMES")
            self.mean = [float(v) for v in artefact["mean"]]
            self.scale = [float(v) for v in artefact["scale"]]
            self.intercept = [float(v) for v in artefact["intercept"]]
            self.weights = [[float(v) for v in row] for row in artefact["weights"]]
            self.rules_mean, self.rules_scale = map(float, artefact["rules_logit"])
            self.gain_mean, self.gain_scale = map(float, artefact["problem_gain"])
            self.tier_weight = float(artefact["tier_weight"])
            n, k = len(problem.NAMES), len(CLASSES)
            shapes = (len(self.mean), len(self.scale), len(self.intercept), len(self.weights))
            if shapes != (n, n, k, k) or any(len(row) != n for row in self.weights):
                raise ValueError(f"weights of shapes {shapes}")
            if min(self.scale) <= 0 or self.rules_scale <= 0 or self.gain_scale <= 0:
                raise ValueError("a scale is not positive")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid blend model {origin}: {exc}") from exc
        self.origin = origin
        self.training: dict[str, Any] = dict(artefact.get("training", {}))
        # constant per model: what a count pushes toward strong over weak, per unit of z
        weak, strong = CLASSES.index("weak_better"), CLASSES.index("strong_better")
        self._diff = [a - b for a, b in zip(self.weights[strong], self.weights[weak], strict=True)]
        self._weak, self._strong = weak, strong

    @classmethod
    def load(cls, *, tiered: bool = False) -> BlendScorer:
        """The shipped model (``models/blend.json``)."""
        source = resources.files("orchestrator.routing").joinpath("models", ARTIFACT)
        document = json.loads(source.read_text(encoding="utf-8"))
        return cls(document, f"(shipped {ARTIFACT})", tiered=tiered)

    @classmethod
    def configured(cls, model_path: Path | None, *, tiered: bool = False) -> BlendScorer:
        """The ``blend`` part of a ``route train`` model file, if it has one; else the shipped one.

        ``model_path`` is ``SWITCHYARD_ROUTER_MODEL_PATH``: the file that also holds the
        tier model (whose call is ``tiered``'s prior), and a word-problem model refitted
        on the user's outcomes when the training rows carried scores.
        """
        found = trained_part(model_path, "blend")
        return cls.load(tiered=tiered) if found is None else cls(*found, tiered=tiered)

    def gain(self, text: str) -> tuple[float, list[tuple[str, float]]]:
        """P(strong better) - P(weak better), and the counts that pushed it hardest."""
        found = problem.counts(text)
        values = problem.vector(found)
        z = list(map(_standard, values, self.mean, self.scale))  # (x - mean) / scale
        # the same sums, in the same order, as sum(w * v for w, v in zip(row, z)): map and
        # operator.mul instead of a generator (admission scores every line of a batch)
        rows = zip(self.intercept, self.weights, strict=True)
        logits = [b + sum(map(mul, row, z)) for b, row in rows]
        top = max(logits)
        exp = [math.exp(v - top) for v in logits]
        total = sum(exp)
        weak, strong = self._weak, self._strong
        pushes = list(map(mul, self._diff, z))
        size = list(map(abs, pushes))  # the largest pushes, ties in feature order
        strongest = sorted(range(len(size)), key=size.__getitem__, reverse=True)[:SHOWN_COUNTS]
        reasons = [(f"{found[problem.NAMES[i]]} {problem.NAMES[i]}", pushes[i]) for i in strongest]
        return (exp[strong] - exp[weak]) / total, reasons

    def score(self, text: str) -> Scored:
        return self._score(text, None)

    def score_in_tier(self, text: str, tier: str) -> Scored:
        return self._score(text, tier)

    def _score(self, text: str, named: str | None) -> Scored:
        """The score; ``named``: the tier the request named (the tier model is not asked)."""
        rules_z, rules_why = self.rules.logit(text)
        gain, pushes = self.gain(text)
        part_rules = (rules_z - self.rules_mean) / self.rules_scale
        part_gain = (gain - self.gain_mean) / self.gain_scale
        z = part_rules + part_gain
        reasons = [f"rules {part_rules:+.2f} ({', '.join(rules_why[:2])})"]
        shown = ", ".join(f"{label} {push:+.2f}" for label, push in pushes)
        reasons.append(f"word-problem model {part_gain:+.2f} (P gain {gain:+.2f}; {shown})")
        if self.tiered:
            tier, probability = (named, None) if named is not None else _tier_call(text)
            bump = self.tier_weight if tier != "fast" else 0.0
            z += bump
            if probability is None:
                reasons.append(f"tier {tier} requested ({bump:+.2f})")
            else:
                reasons.append(f"tier model: {tier} ({probability:.2f}, {bump:+.2f})")
        return Scored(round(sigmoid(z), 4), tuple(reasons))


def _tier_call(text: str) -> tuple[str, float]:
    """The tier the router's tier model gives ``text``, and its probability."""
    from orchestrator.routing import tier_model

    model = tier_model.current()
    probabilities = model.probabilities(text)
    best = max(range(len(probabilities)), key=lambda i: float(probabilities[i]))
    return model.tiers[best].value, float(probabilities[best])
