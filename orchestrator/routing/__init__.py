"""Routing: decide a request's tier, strong or weak, then the deployments to try, in order.

    route(request, catalog, policy)
      = classify(request, catalog)             tier, confidence, reasons
      + policy.decide(request)                 strong/weak: scorer, score, threshold, reasons
                                               (not scored when the tier has one deployment)
      + plan_route(request, tier, catalog)     deployments, cheapest (or strongest) first

``RouteDecision.record()`` is what a job stores and shows: every decision taken,
with the scorer, score, threshold and reasons behind it.

Errors: ``ValidationFailed("model", ...)`` for an unknown model;
``NoRoute`` when no deployment of the tier can take the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.schemas import JobRequest, Objective
from orchestrator.core.tiers import Tier
from orchestrator.core.tokens import estimate_request_tokens
from orchestrator.routing import live_stats
from orchestrator.routing import objective as objectives
from orchestrator.routing.classify import STAGES, Classification, Scan, Stage, classify
from orchestrator.routing.live_stats import DeploymentStats
from orchestrator.routing.policy import (
    REQUIREMENTS,
    Requirement,
    expected_cost_micro_usd,
    plan_route,
    resolve_model,
)
from orchestrator.routing.scorer_base import Scored, Scorer
from orchestrator.routing.scorers import SCORERS, get_scorer
from orchestrator.routing.strength import StrengthDecision, StrengthPolicy, default_policy

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


@dataclass(frozen=True)
class RouteDecision:
    """Everything the dispatcher stores about a routing choice, and why it was made."""

    tier: Tier
    confidence: float
    reasons: tuple[str, ...]
    plan: tuple[Deployment, ...]
    estimated_input_tokens: int
    strength: StrengthDecision
    objective: ObjectiveStep | None = None
    classifier: str = "tier-rules"
    probabilities: dict[str, float] | None = None

    def record(self) -> list[dict[str, Any]]:
        """Every decision taken, as stored with the job (``jobs.routing``) and shown by the API."""
        tier: dict[str, Any] = {
            "step": "tier",
            "choice": self.tier.value,
            "scorer": self.classifier,
            "score": self.confidence,
            "threshold": None,
            "quality": None,
            "reasons": list(self.reasons),
        }
        if self.probabilities is not None:
            tier["probabilities"] = dict(self.probabilities)
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
        return [tier, strength] + ([self.objective.record()] if self.objective else [])


def route(
    request: JobRequest,
    catalog: Catalog,
    policy: StrengthPolicy | None = None,
    *,
    objective: Objective | None = None,
    stats: Mapping[str, DeploymentStats] | None = None,
) -> RouteDecision:
    """Classify the request, decide strong or weak, then plan its deployments for that tier.

    ``objective`` is the default for a request that names none (its tenant's or
    batch's); ``stats`` are the live statistics latency predictions come from.
    """
    decided = classify(request, catalog)
    deployments = len(catalog.for_tier(decided.tier))
    strength = (policy or default_policy()).decide(request, deployments=deployments)
    tokens = estimate_request_tokens(request.canonical_messages())
    goal = request.objective or objective
    limited = request.max_cost_usd is not None or request.max_latency_ms is not None
    if stats is None and (goal is not None or limited):
        stats = live_stats.current(d.name for d in catalog.deployments)
    plan = plan_route(
        request,
        decided.tier,
        catalog,
        input_tokens=tokens,
        strong=strength.strong,
        objective=goal,
        stats=stats,
    )
    step = ObjectiveStep.of(request, goal, plan, tokens, stats)
    return RouteDecision(
        decided.tier,
        decided.confidence,
        decided.reasons,
        plan,
        tokens,
        strength,
        step,
        decided.classifier,
        decided.probabilities,
    )


@dataclass(frozen=True)
class ObjectiveStep:
    """The objective a plan was ordered by, with each candidate's cost and latency."""

    objective: Objective
    lines: tuple[str, ...]

    @classmethod
    def of(
        cls,
        request: JobRequest,
        goal: Objective | None,
        plan: tuple[Deployment, ...],
        tokens: int,
        stats: Mapping[str, DeploymentStats] | None,
    ) -> ObjectiveStep | None:
        limited = request.max_cost_usd is not None or request.max_latency_ms is not None
        if goal is None and not limited:
            return None
        found = objectives.estimate_all(plan, tokens, request.max_tokens, stats)
        return cls(goal or "cost", tuple(objectives.describe(found, goal or "cost")))

    def record(self) -> dict[str, Any]:
        return {
            "step": "objective",
            "choice": self.objective,
            "scorer": "live-stats",
            "score": None,
            "threshold": None,
            "quality": None,
            "reasons": list(self.lines),
        }
