"""A pipeline job's progress as the API shows it: which step, each step's route and cost."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import object_session

from orchestrator.core.schemas import JobStatus, StepView
from orchestrator.core.tiers import Tier
from orchestrator.store.models import Job


def pipeline_steps(job: Job) -> tuple[int | None, list[StepView] | None]:
    """(current step index, one view per declared step) for a pipeline parent, else (None, None).

    Steps not created yet are listed with ``status: null``. The children are read
    in the parent's own session, scoped by its tenant.
    """
    declared = (job.request or {}).get("steps")
    session = object_session(job)
    if not declared or job.parent_job_id is not None or session is None:
        return None, None
    children = {
        c.step_index: c
        for c in session.scalars(
            select(Job).where(Job.parent_job_id == job.id, Job.tenant_id == job.tenant_id)
        )
    }
    names = [str(s.get("name") or f"step{i}") for i, s in enumerate(declared)]
    views = [_step_view(i, name, children.get(i)) for i, name in enumerate(names)]
    current = max((i for i in children if i is not None), default=None)
    return current, views


def _step_view(index: int, name: str, child: Job | None) -> StepView:
    if child is None:
        return StepView(index=index, name=name)
    return StepView(
        index=index,
        name=name,
        job_id=child.id,
        status=JobStatus(child.status),
        tier=Tier(child.tier),
        deployment=child.deployment,
        cost_micro_usd=child.cost_micro_usd,
        attempts=child.attempts,
        error=child.error,
    )


__all__ = ["pipeline_steps"]
