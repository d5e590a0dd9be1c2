"""The tier classifier: a pipeline of small stages, each able to say why.

    model (default):  explicit override -> modality -> the learned model (tier_model.py)
    rules:            explicit override -> modality -> code -> reasoning -> (nothing) fast

Rules keep only what is certain: a tier or model the client named, and images
(vision). Everything else is the learned model's call, with every tier's
probability and its reasons. The ``rules`` pipeline below is the hand-written
classifier it replaced, kept by name (``CLASSIFIERS``; ``switchyard eval tiers
--classifier rules``; ``SWITCHYARD_ROUTER_TIER_CLASSIFIER=rules``) for comparison.

A stage gets a `Scan` of the request and returns a `Classification` or None; the
first stage that decides wins. The code and reasoning stages are `ScoredStage`s:
they add up the weights of the clues (`Signal`s) they find and decide their tier
once the sum reaches 1.0, so one weak clue ("python", "explain why") never
decides alone but two together do. A stage that falls short leaves its clues on
the scan, and the fast fallback lowers its confidence accordingly.

Cost: only a bounded window of the text is scanned (head and tail, where requests
say what they want); the window's words are put in a set once, and a clue whose
trigger words or marks are absent is skipped without running its regex.
To add a stage, insert it into `STAGES`; to add a clue, append to a signal table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.core.catalog import Catalog
from orchestrator.core.errors import ConfigError
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.routing import tier_model
from orchestrator.routing.policy import resolve_model
from orchestrator.routing.scan import THRESHOLD, Classification, Leaning, Scan, Signal, Stage
from orchestrator.routing.signals import CODE_SIGNALS, REASONING_SIGNALS

__all__ = [
    "CLASSIFIERS",
    "STAGES",
    "Classification",
    "ModelStage",
    "Scan",
    "ScoredStage",
    "Stage",
    "classify",
    "stages_of",
]


def _confidence(score: float) -> float:
    """0.75 at the threshold, rising to 0.95 at twice it."""
    return round(min(0.95, 0.55 + 0.2 * score / THRESHOLD), 2)


@dataclass(frozen=True)
class ScoredStage:
    """Decides ``tier`` when the weights of the signals found reach the threshold.

    One clue per label counts; scanning stops once confidence cannot rise further.
    """

    tier: Tier
    signals: tuple[Signal, ...]

    def __call__(self, scan: Scan) -> Classification | None:
        score, reasons, seen = 0.0, [], set()
        for signal in self.signals:
            if score >= 2 * THRESHOLD:
                break  # confidence is already at its ceiling
            if signal.label in seen:
                continue
            hit = signal.weigh(scan)
            if hit is not None:
                score += hit[0]
                reasons.append(hit[1])
                seen.add(signal.label)
        if score >= THRESHOLD:
            return Classification(self.tier, _confidence(score), tuple(reasons))
        if reasons:
            scan.leanings.append(Leaning(self.tier, score, tuple(reasons)))
        return None


def explicit_override(scan: Scan) -> Classification | None:
    """A tier or model the client named wins over every rule."""
    request = scan.request
    if request.tier is not None:
        return Classification(request.tier, 1.0, (f"tier '{request.tier}' requested",))
    if request.model is not None:
        dep = resolve_model(request, scan.catalog)  # raises ValidationFailed if unknown
        tier = dep.tiers[0]
        reason = f"model '{request.model}' requested (deployment '{dep.name}', tier '{tier}')"
        return Classification(tier, 1.0, (reason,))
    return None


def modality(scan: Scan) -> Classification | None:
    """Images can only be read by vision deployments."""
    count = scan.request.image_count()
    if count == 0:
        return None
    reason = "image part present" if count == 1 else f"{count} image parts present"
    return Classification(Tier.VISION, 1.0, (reason,))


def fast_fallback(scan: Scan) -> Classification:
    """Nothing decisive: the fast tier, less sure the closer another tier came."""
    if not scan.leanings:
        return Classification(Tier.FAST, 0.9, ("no code, math or multi-step signal",))
    top = max(lean.score for lean in scan.leanings)
    reasons = ["no decisive signal"]
    for lean in scan.leanings:
        reasons.extend(f"weak {lean.tier} signal: {r}" for r in lean.reasons)
    return Classification(Tier.FAST, round(0.9 - 0.4 * top / THRESHOLD, 2), tuple(reasons))


@dataclass(frozen=True)
class ModelStage:
    """The learned model decides (``model`` given, else ``tier_model.current()``)."""

    model: tier_model.TierModel | None = None

    def __call__(self, scan: Scan) -> Classification:
        found = (self.model or tier_model.current()).predict(scan.text)
        confidence = found.probabilities[found.tier.value]
        probabilities = found.probabilities
        return Classification(found.tier, confidence, found.reasons, "tier-model", probabilities)


STAGES: list[Stage] = [  # the rules classifier
    explicit_override,
    modality,
    ScoredStage(Tier.CODE, CODE_SIGNALS),
    ScoredStage(Tier.REASONING, REASONING_SIGNALS),
]
CLASSIFIERS: dict[str, list[Stage]] = {
    "model": [explicit_override, modality, ModelStage()],
    "rules": STAGES,
}


def stages_of(name: str) -> list[Stage]:
    """The pipeline of the classifier called ``name`` (``CLASSIFIERS``)."""
    try:
        return CLASSIFIERS[name]
    except KeyError:
        known = ", ".join(CLASSIFIERS)
        raise ConfigError(f"unknown tier classifier {name!r}; known: {known}") from None


def classify(
    request: JobRequest, catalog: Catalog, stages: Sequence[Stage] | None = None
) -> Classification:
    """The request's tier from the first stage that decides, else fast.

    ``stages`` default to the classifier the settings name (``router_tier_classifier``).
    """
    if stages is None:
        from orchestrator.core.config import get_settings

        stages = stages_of(get_settings().router_tier_classifier)
    scan = Scan.of(request, catalog)
    for stage in stages:
        decided = stage(scan)
        if decided is not None:
            return decided
    return fast_fallback(scan)
