"""Routing: decide a request's tier, strong or weak, then the deployments to try, in order.

    route(request, catalog, policy)
      = classify(request, catalog)             tier, confidence, reasons
      + policy.decide(request)                 strong/weak: scorer, score, threshold, reasons
      + plan_route(request, tier, catalog)     deployments, cheapest (or strongest) first

``RouteDecision.record()`` is what a job stores and shows: every decision taken,
with the scorer, score, threshold and reasons behind it.

Errors: ``ValidationFailed("model", ...)`` for an unknown model;
``NoRoute`` when no deployment of the tier can take the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.catalog import Catalog, Deployment
from orchestrator.routing.classify import STAGES, Classification, Scan, Stage, classify
from orchestrator.routing.policy import (
    REQUIREMENTS,
    Requirement,
    expected_cost_micro_usd,
    plan_route,
    resolve_model,
)
from orchestrator.routing.scorers import SCORERS, Scored, Scorer, get_scorer
from orchestrator.routing.strength import StrengthDecision, StrengthPolicy, default_policy
from orchestrator.schemas import JobRequest
from orchestrator.tiers import Tier
from orchestrator.tokens import estimate_request_tokens

__all__ = [
    "REQUIREMENTS",
    "SCORERS",
    "STAGES",
    "Classification",
    "Requirement",
    "RouteDecision",
    "Scan",
    "Scored",
    "Scorer",
    "Stage",
    "StrengthDecision",
    "StrengthPolicy",
    "classify",
    "expected_cost_micro_usd",
    "get_scorer",
    "plan_route",
    "resolve_model",
    "route",
]


TIER_CLASSIFIER = "tier-rules"


@dataclass(frozen=True)
class RouteDecision:
    """Everything the dispatcher stores about a routing choice, and why it was made."""

    tier: Tier
    confidence: float
    reasons: tuple[str, ...]
    plan: tuple[Deployment, ...]
    estimated_input_tokens: int
    strength: StrengthDecision

    def record(self) -> list[dict[str, Any]]:
        """Every decision taken, as stored with the job (``jobs.routing``) and shown by the API."""
        tier = {
            "step": "tier",
            "choice": self.tier.value,
            "scorer": TIER_CLASSIFIER,
            "score": self.confidence,
            "threshold": None,
            "quality": None,
            "reasons": list(self.reasons),
        }
        s = self.strength
        strength = {
            "step": "strength",
            "choice": s.choice,
            "scorer": s.scorer,
            "score": s.score,
            "threshold": s.threshold,
            "quality": s.quality,
            "reasons": list(s.reasons),
        }
        return [tier, strength]


def route(
    request: JobRequest, catalog: Catalog, policy: StrengthPolicy | None = None
) -> RouteDecision:
    """Classify the request, decide strong or weak, then plan its deployments for that tier."""
    decided = classify(request, catalog)
    strength = (policy or default_policy()).decide(request)
    tokens = estimate_request_tokens(request.canonical_messages())
    plan = plan_route(request, decided.tier, catalog, input_tokens=tokens, strong=strength.strong)
    return RouteDecision(decided.tier, decided.confidence, decided.reasons, plan, tokens, strength)
