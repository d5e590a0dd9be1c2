"""The strong/weak decision inside a tier, from a scorer and a ``quality`` knob.

    quality  the share of requests (on calibration traffic) that should get the
             tier's strongest deployment: 0 = always the cheapest first,
             1 = always the strongest first. Per request (``JobRequest.quality``),
             else ``SWITCHYARD_ROUTER_QUALITY``.
    threshold = calibration.threshold_for(quality)
    strong    = score >= threshold

A request that names a model keeps it: the decision is recorded as ``pinned``
and the plan is left as the client asked. A tier with a single deployment leaves
nothing to choose: the decision is recorded as ``only`` and the request is not
scored (a batch's admission scored every line for an order of one).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.routing import calibration
from orchestrator.routing.calibration import Calibration
from orchestrator.routing.scorer_base import Scorer
from orchestrator.routing.scorers import DEFAULT_SCORER, get_scorer

DEFAULT_QUALITY = 0.3
Choice = Literal["strong", "weak", "pinned", "only"]


@dataclass(frozen=True)
class StrengthDecision:
    """Whether the strongest or the cheapest deployment of the tier goes first, and why."""

    choice: Choice
    scorer: str
    score: float | None
    threshold: float | None
    quality: float
    reasons: tuple[str, ...]

    @property
    def strong(self) -> bool:
        return self.choice == "strong"


def scored_text(request: JobRequest) -> str:
    """What the scorer reads: the last user turn (RouteLLM routes on it), else all text."""
    users = [m.text() for m in request.canonical_messages() if m.role == "user"]
    return users[-1] if users and users[-1] else request.prompt_text()


@dataclass(frozen=True)
class StrengthPolicy:
    """A scorer, its calibration and the default quality: everything the decision needs."""

    scorer: Scorer
    calibration: Calibration
    quality: float = DEFAULT_QUALITY

    @classmethod
    def from_settings(cls, settings: Settings) -> StrengthPolicy:
        name = settings.router_scorer
        table = calibration.load(settings.router_calibration_path, name)
        return cls(get_scorer(name), table, settings.router_quality)

    def decide(self, request: JobRequest, *, deployments: int = 2) -> StrengthDecision:
        """Strong or weak for ``request``; ``deployments``: how many its tier has (with
        fewer than two the order cannot change, and the request is not scored)."""
        quality = self.quality if request.quality is None else request.quality
        name = self.scorer.name
        if request.model is not None:
            reason = f"model '{request.model}' requested: no strong/weak choice"
            return StrengthDecision("pinned", name, None, None, quality, (reason,))
        if deployments < 2:
            reason = "one deployment serves the tier: no strong/weak choice"
            return StrengthDecision("only", name, None, None, quality, (reason,))
        text = scored_text(request)
        named = request.tier  # a named tier is certain: the tiered scorer takes it as given
        scorer = self.scorer
        scored = scorer.score(text) if named is None else scorer.score_in_tier(text, named.value)
        threshold = self.calibration.threshold_for(quality)
        strong = quality >= 1.0 or (quality > 0.0 and scored.value >= threshold)
        verdict = (
            f"score {scored.value:.3f} {'>=' if strong else '<'} threshold {threshold:.3f}"
            f" (quality {quality:g})"
        )
        choice: Choice = "strong" if strong else "weak"
        return StrengthDecision(
            choice, name, scored.value, threshold, quality, (verdict, *scored.reasons)
        )


@cache
def default_policy() -> StrengthPolicy:
    """The default scorer (`tiered`) with its built-in calibration and the default quality."""
    return StrengthPolicy(get_scorer(DEFAULT_SCORER), calibration.builtin(DEFAULT_SCORER))
