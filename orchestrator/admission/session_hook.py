"""Admission hook for sessions and the response cache, run for every job the dispatcher writes.

``ConversationHook.apply`` does two things to a routed request before its row is
written:

- fills in its effective ``cache`` mode (``orchestrator.cache.responses``), so the
  worker reads the decision from the job instead of deciding again;
- gives a session turn its *affinity*: if the deployment that served the
  session's last turn is in this turn's plan and the tier is the same, it moves
  to the front (its provider-side prompt cache holds the conversation). If its
  breaker is open the worker's breaker guard skips it, and the plan goes on as
  routed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import Engine

from orchestrator.cache.hits import TenantModes
from orchestrator.cache.responses import effective_mode
from orchestrator.core.loop_guard import needs_io
from orchestrator.core.schemas import JobRequest
from orchestrator.routing import RouteDecision
from orchestrator.store import sessions
from orchestrator.store.db import session_scope


def prefer(decision: RouteDecision, deployment: str | None, tier: str | None) -> RouteDecision:
    """The decision with ``deployment`` first in its plan, if it is there and the tier held."""
    if deployment is None or tier != decision.tier.value:
        return decision
    names = [d.name for d in decision.plan]
    if deployment not in names or names[0] == deployment:
        return decision
    chosen = decision.plan[names.index(deployment)]
    plan = (chosen, *(d for d in decision.plan if d.name != deployment))
    reasons = (*decision.reasons, f"session affinity: {deployment} served the last turn")
    return replace(decision, plan=plan, reasons=reasons)


@dataclass
class ConversationHook:
    """Resolves cache modes and session affinity at admission (one per dispatcher)."""

    engine: Engine
    modes: TenantModes = field(init=False)

    def __post_init__(self) -> None:
        self.modes = TenantModes(self.engine)

    def apply(
        self, tenant_id: str, request: JobRequest, decision: RouteDecision
    ) -> tuple[JobRequest, RouteDecision]:
        mode = effective_mode(request, self.modes.get(tenant_id))
        if request.cache != mode:
            request = request.model_copy(update={"cache": mode})
        if request.session_id is not None:
            needs_io("the session's affinity")
            with session_scope(self.engine) as db:
                last, tier = sessions.affinity(
                    db, tenant_id=tenant_id, session_id=request.session_id
                )
            decision = prefer(decision, last, tier)
        return request, decision
