"""Strong/weak scorers: how much a prompt needs the strong model, chosen by name.

    Scorer.score(text) -> Scored(value in [0, 1], reasons)     one abstract method
    SCORERS["rules"]()                                          registry of factories
    get_scorer("learned")                                       cached instance

As in RouteLLM's router registry, a scorer only scores; the shared decision
(``strength.StrengthPolicy``) compares the score with a calibrated threshold.
A higher value means the strong model is more likely to be worth its price.

    rules    hand-set weights over ``complexity`` features; pure Python
    learned  logistic regressions fitted on the MMLU training split; pure Python
             at run time, trained with the optional ``learned`` extra
    blend    ``rules`` plus a word-problem model fitted on GSM8K's development half;
             pure Python at run time
    tiered   (default) ``blend`` plus a prior from the tier model (reasoning or code: +1)
    gain     the tier model's call (reasoning or code: upper half) and, inside it, the
             expected gain of the strong model fitted on the encoder's embedding and
             readable counts; numpy and the shared encoder at run time
    gain-fitted  the fitted expected gain alone (no tier prior)
    length   baseline: longer prompts score higher
    random   baseline: a stable pseudo-random value per prompt

Scorers that were developed on some prompts say so (``held_in``): an evaluation
drops those prompts, so nothing is reported on the data it was fitted to.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from functools import cache

from orchestrator.core.errors import ConfigError
from orchestrator.routing.complexity import Complexity
from orchestrator.routing.scorer_base import (
    Scored,
    Scorer,
    sigmoid,
)


class RulesScorer(Scorer):
    """The default: a few readable signs of multi-step work, weighed by hand.

    z = (size - 4.0) + 0.5 fractions + 0.5 parts + 0.1 numbers + 0.5 asks_work;
    value = sigmoid(z). The weights were chosen on the development prompts
    (MMLU training subjects, half of GSM8K), listed in ``models/held_in.txt``.
    """

    name = "rules"
    uses_held_in = True
    SIZE_PIVOT = 4.0  # log(1 + 54 words): a prompt of about 54 words scores 0.5 on size alone
    BONUS: tuple[tuple[str, float, str], ...] = (
        ("fractions", 0.5, "fractions or ratios"),
        ("parts", 0.5, "several statements judged together"),
        ("asks_work", 0.5, "asks for a proof, derivation or step-by-step work"),
    )
    NUMBERS_WEIGHT = 0.1

    def logit(self, text: str) -> tuple[float, list[str]]:
        """``z`` before the sigmoid, and its reasons (the ``blend`` scorer reads it too)."""
        found = Complexity.of(text)
        features = found.vector()
        z = features["size"] - self.SIZE_PIVOT
        reasons = [f"~{found.words} words ({z:+.2f})"]
        for feature, weight, label in self.BONUS:
            if features[feature]:
                z += weight
                reasons.append(f"{label} (+{weight:.2f})")
        if found.numbers:
            bump = self.NUMBERS_WEIGHT * features["numbers"]
            z += bump
            reasons.append(f"{found.numbers} numbers (+{bump:.2f})")
        return z, reasons

    def score(self, text: str) -> Scored:
        z, reasons = self.logit(text)
        return Scored(round(sigmoid(z), 4), tuple(reasons))


class LengthScorer(Scorer):
    """Baseline: the longer the prompt, the higher the score (1 - e^(-chars/1000))."""

    name = "length"

    def score(self, text: str) -> Scored:
        value = 1.0 - math.exp(-len(text) / 1000.0)
        return Scored(value, (f"{len(text):,} characters",))


class RandomScorer(Scorer):
    """Baseline: a uniform value derived from the prompt's hash, stable across runs."""

    name = "random"

    def score(self, text: str) -> Scored:
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return Scored(int.from_bytes(digest[:8], "big") / 2**64, ("random baseline",))


def _learned() -> Scorer:
    from orchestrator.routing.learned import LearnedScorer

    return LearnedScorer.load()


def _blend() -> Scorer:
    from orchestrator.routing.blend import BlendScorer

    return BlendScorer.load()


def _tiered() -> Scorer:
    from orchestrator.routing.blend import BlendScorer

    return BlendScorer.load(tiered=True)


def _gain() -> Scorer:
    from orchestrator.core.config import get_settings
    from orchestrator.routing.gain import GainScorer

    return GainScorer.configured(get_settings().router_model_path)


def _gain_fitted() -> Scorer:
    from orchestrator.core.config import get_settings
    from orchestrator.routing.gain import GainScorer

    return GainScorer.configured(get_settings().router_model_path, prior=False)


SCORERS: dict[str, Callable[[], Scorer]] = {
    "rules": RulesScorer,
    "learned": _learned,
    "blend": _blend,
    "tiered": _tiered,
    "gain": _gain,
    "gain-fitted": _gain_fitted,
    "length": LengthScorer,
    "random": RandomScorer,
}
BASELINES: tuple[str, ...] = ("random", "length")
DEFAULT_SCORER = "tiered"


@cache
def get_scorer(name: str) -> Scorer:
    """The scorer registered under ``name`` (one instance per process)."""
    factory = SCORERS.get(name)
    if factory is None:
        raise ConfigError(f"unknown scorer {name!r}; available: {', '.join(SCORERS)}")
    return factory()
