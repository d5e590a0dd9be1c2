"""The route plan: which deployments may serve a request, cheapest first.

    plan_route(request, tier, catalog)
      pinned   = the deployment request.model names (if any), always first
      fallback = the tier's deployments
                 -> filtered by each `Requirement` (vision, output size, context window)
                 -> ordered by expected cost, then strength (strongest first);
                    or, for a request sent to the strong model, by strength, then cost;
                    or, with an objective or a cost/latency limit, by
                    ``orchestrator.routing.objective`` (COSTS.md)

A plan that would be empty raises `NoRoute` saying which requirement emptied it.
Requirements are small objects in `REQUIREMENTS`, so a new constraint is one more
entry there, not a branch in `plan_route`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.errors import NoRoute, ValidationFailed
from orchestrator.core.schemas import JobRequest, Objective
from orchestrator.core.tiers import Tier
from orchestrator.core.tokens import estimate_request_tokens
from orchestrator.routing import objective
from orchestrator.routing.live_stats import DeploymentStats


@dataclass(frozen=True)
class Need:
    """What a request asks of a deployment, computed once per plan."""

    vision: bool
    input_tokens: int
    max_tokens: int

    @classmethod
    def of(cls, request: JobRequest, input_tokens: int | None = None) -> Need:
        if input_tokens is None:
            input_tokens = estimate_request_tokens(request.canonical_messages())
        return cls(request.image_count() > 0, input_tokens, request.max_tokens)


class Requirement(Protocol):
    """A hard constraint a deployment must meet, able to explain a refusal."""

    def allows(self, dep: Deployment, need: Need) -> bool: ...

    def why_not(self, dep: Deployment, need: Need) -> str: ...

    def why_none(self, tier: Tier, need: Need, rejected: Sequence[Deployment]) -> str: ...


class VisionRequirement:
    """Requests with images can only go to deployments that accept images."""

    def allows(self, dep: Deployment, need: Need) -> bool:
        return dep.vision or not need.vision

    def why_not(self, dep: Deployment, need: Need) -> str:
        return "it does not accept images"

    def why_none(self, tier: Tier, need: Need, rejected: Sequence[Deployment]) -> str:
        return f"no vision deployment in tier '{tier}'"


class OutputRequirement:
    """max_tokens must not exceed what the deployment can generate in one call."""

    def allows(self, dep: Deployment, need: Need) -> bool:
        return dep.max_output_tokens >= need.max_tokens

    def why_not(self, dep: Deployment, need: Need) -> str:
        return f"max_tokens={need.max_tokens} exceeds its max_output_tokens={dep.max_output_tokens}"

    def why_none(self, tier: Tier, need: Need, rejected: Sequence[Deployment]) -> str:
        largest = max(d.max_output_tokens for d in rejected)
        return (
            f"max_tokens={need.max_tokens} exceeds every max_output_tokens of tier '{tier}'"
            f" (largest {largest})"
        )


class ContextRequirement:
    """The prompt plus the reserved output must fit in the context window."""

    def allows(self, dep: Deployment, need: Need) -> bool:
        return need.input_tokens + need.max_tokens <= dep.context_window

    def why_not(self, dep: Deployment, need: Need) -> str:
        return (
            f"prompt of ~{need.input_tokens} tokens + max_tokens={need.max_tokens}"
            f" exceeds its context window of {dep.context_window}"
        )

    def why_none(self, tier: Tier, need: Need, rejected: Sequence[Deployment]) -> str:
        largest = max(d.context_window for d in rejected)
        return (
            f"prompt of ~{need.input_tokens} tokens exceeds every context window of tier"
            f" '{tier}' (largest {largest}, with max_tokens={need.max_tokens} reserved)"
        )


REQUIREMENTS: list[Requirement] = [
    VisionRequirement(),
    OutputRequirement(),
    ContextRequirement(),
]


def resolve_model(request: JobRequest, catalog: Catalog) -> Deployment:
    """The deployment ``request.model`` names (by deployment or model name).

    For a request with images, a vision deployment of the same model is preferred
    (``gpt-4o-mini`` then means ``sim-gpt-4o-mini-vision``).
    """
    assert request.model is not None
    dep = catalog.find(request.model)
    if dep is None:
        raise ValidationFailed("model", f"unknown model or deployment {request.model!r}")
    if request.image_count() and not dep.vision:
        seeing = [d for d in catalog.deployments if d.model == dep.model and d.vision]
        dep = min(seeing, key=lambda d: d.input_usd_per_mtok, default=dep)
    return dep


def expected_cost_micro_usd(dep: Deployment, input_tokens: int, max_tokens: int) -> Decimal:
    """Worst-case cost of one call (all of max_tokens generated), unrounded."""
    input_cost = Decimal(input_tokens) * dep.input_usd_per_mtok
    output_cost = Decimal(max_tokens) * dep.output_usd_per_mtok
    return input_cost + output_cost


def _check_pinned(request: JobRequest, dep: Deployment, need: Need) -> None:
    for req in REQUIREMENTS:
        if not req.allows(dep, need):
            raise NoRoute(
                f"model {request.model!r} (deployment '{dep.name}') cannot serve this"
                f" request: {req.why_not(dep, need)}"
            )


def _fitting(tier: Tier, candidates: list[Deployment], need: Need) -> list[Deployment]:
    """Candidates that meet every requirement; NoRoute names the first that empties them."""
    if not candidates:
        raise NoRoute(f"no deployment serves tier '{tier}'")
    for req in REQUIREMENTS:
        kept = [d for d in candidates if req.allows(d, need)]
        if not kept:
            raise NoRoute(req.why_none(tier, need, candidates))
        candidates = kept
    return candidates


def by_objective(
    request: JobRequest,
    deployments: list[Deployment],
    need: Need,
    goal: Objective,
    stats: Mapping[str, DeploymentStats] | None,
) -> list[Deployment]:
    """The deployments within the request's limits, ordered by the objective."""
    found = objective.estimate_all(deployments, need.input_tokens, need.max_tokens, stats)
    kept = objective.constrain(
        found, max_cost_usd=request.max_cost_usd, max_latency_ms=request.max_latency_ms
    )
    return [c.deployment for c in objective.order(kept, goal)]


def plan_route(
    request: JobRequest,
    tier: Tier,
    catalog: Catalog,
    *,
    input_tokens: int | None = None,
    strong: bool = False,
    objective: Objective | None = None,
    stats: Mapping[str, DeploymentStats] | None = None,
) -> tuple[Deployment, ...]:
    """Deployments to try in order: the pinned model (if any), then the tier cheapest-first.

    ``strong`` puts the tier strongest-first instead (then cheapest among equals), for
    requests the strong/weak decision sent to the strong model. ``input_tokens`` lets
    a caller that already estimated the prompt skip doing it again. An ``objective``
    (or the request's own, or a ``max_cost_usd``/``max_latency_ms`` limit) orders the
    tier by ``orchestrator.routing.objective`` instead, with ``stats`` (live statistics
    per deployment name) for the latency predictions.
    """
    need = Need.of(request, input_tokens)
    pinned: Deployment | None = None
    if request.model is not None:
        pinned = resolve_model(request, catalog)
        _check_pinned(request, pinned, need)
    others = [d for d in catalog.for_tier(tier) if d != pinned]
    if pinned is not None:
        fallbacks = [d for d in others if all(r.allows(d, need) for r in REQUIREMENTS)]
    else:
        fallbacks = _fitting(tier, others, need)

    def cost(d: Deployment) -> Decimal:
        return expected_cost_micro_usd(d, need.input_tokens, need.max_tokens)

    goal = objective or request.objective
    if goal is not None or request.max_cost_usd is not None or request.max_latency_ms is not None:
        fallbacks = by_objective(request, fallbacks, need, goal or "cost", stats)
    elif strong:
        fallbacks.sort(key=lambda d: (-d.strength, cost(d), d.name))
    else:
        fallbacks.sort(key=lambda d: (cost(d), -d.strength, d.name))
    return tuple(fallbacks) if pinned is None else (pinned, *fallbacks)
