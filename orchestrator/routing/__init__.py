"""Routing: decide a request's tier, then the deployments to try, in order.

    route(request, catalog)
      = classify(request, catalog)             tier, confidence, reasons
      + plan_route(request, tier, catalog)     deployments, cheapest first

Errors: ``ValidationFailed("model", ...)`` for an unknown model;
``NoRoute`` when no deployment of the tier can take the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.catalog import Catalog, Deployment
from orchestrator.routing.classify import STAGES, Classification, Scan, Stage, classify
from orchestrator.routing.policy import (
    REQUIREMENTS,
    Requirement,
    expected_cost_micro_usd,
    plan_route,
    resolve_model,
)
from orchestrator.schemas import JobRequest
from orchestrator.tiers import Tier
from orchestrator.tokens import estimate_request_tokens

__all__ = [
    "REQUIREMENTS",
    "STAGES",
    "Classification",
    "Requirement",
    "RouteDecision",
    "Scan",
    "Stage",
    "classify",
    "expected_cost_micro_usd",
    "plan_route",
    "resolve_model",
    "route",
]


@dataclass(frozen=True)
class RouteDecision:
    """Everything the dispatcher stores about a routing choice, and why it was made."""

    tier: Tier
    confidence: float
    reasons: tuple[str, ...]
    plan: tuple[Deployment, ...]
    estimated_input_tokens: int


def route(request: JobRequest, catalog: Catalog) -> RouteDecision:
    """Classify the request, then plan its deployments for that tier."""
    decided = classify(request, catalog)
    tokens = estimate_request_tokens(request.canonical_messages())
    plan = plan_route(request, decided.tier, catalog, input_tokens=tokens)
    return RouteDecision(decided.tier, decided.confidence, decided.reasons, plan, tokens)
