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
from orchestrator.routing.rules_scorer import RulesScorer
from orchestrator.routing.scorer_base import (
    Scored,
    Scorer,
)


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
    from orchestrator.core.config import get_settings
    from orchestrator.routing.blend import BlendScorer

    return BlendScorer.configured(get_settings().router_model_path)


def _tiered() -> Scorer:
    from orchestrator.core.config import get_settings
    from orchestrator.routing.blend import BlendScorer

    return BlendScorer.configured(get_settings().router_model_path, tiered=True)


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
