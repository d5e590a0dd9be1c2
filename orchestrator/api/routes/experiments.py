"""Experiments of routing strategies (create, list, get, report, stop) and job feedback.

Every read is scoped by the caller's tenant: another tenant's experiment or job is a 404.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from orchestrator.api.bodies import JSONBodyRoute
from orchestrator.api.deps import SessionDep, StateDep, TenantDep
from orchestrator.core.experiment_specs import ArmSpec, ExperimentSpec, GuardrailSpec, Unit
from orchestrator.experiments import arm_stats as experiment_stats
from orchestrator.experiments import records as store
from orchestrator.experiments.assignment import check_spec
from orchestrator.jobs.views import aware
from orchestrator.store.db import session_scope
from orchestrator.store.models import Experiment
from orchestrator.wire.experiment_views import (
    ExperimentList,
    ExperimentView,
    FeedbackRequest,
    FeedbackView,
    PausedArm,
)

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], route_class=JSONBodyRoute)
feedback = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JSONBodyRoute)


def experiment_view(row: Experiment) -> ExperimentView:
    created = aware(row.created_at)
    assert created is not None
    return ExperimentView(
        id=row.id,
        name=row.name,
        status=cast(Literal["running", "stopped"], row.status),
        unit=cast(Unit, row.unit),
        tiers=row.tiers,
        control=row.control,
        arms=[ArmSpec.model_validate(a) for a in row.arms],
        guardrail=GuardrailSpec.model_validate(row.guardrail or {}),
        judge_share=row.judge_share,
        paused={k: PausedArm.model_validate(v) for k, v in (row.paused or {}).items()},
        source=row.source,
        created_at=created,
        stopped_at=aware(row.stopped_at),
    )


def report_for(session: Session, *, tenant_id: str, row: Experiment) -> dict[str, Any]:
    """The experiment with per-arm figures, intervals and differences from control."""
    arms = [str(a["name"]) for a in row.arms]
    figures = experiment_stats.report(
        arms=arms,
        control=row.control,
        outcomes=store.arm_outcomes(session, tenant_id=tenant_id, experiment_id=row.id),
        scores=store.feedback_scores(session, tenant_id=tenant_id, experiment_id=row.id),
        admitted=store.arm_admitted(session, tenant_id=tenant_id, experiment_id=row.id),
        paused=dict(row.paused or {}),
    )
    return {"experiment": experiment_view(row).model_dump(mode="json"), **figures}


@router.post("", status_code=status.HTTP_201_CREATED)
def create_experiment(
    body: ExperimentSpec, state: StateDep, tenant_id: TenantDep
) -> ExperimentView:
    """Start an experiment: new jobs of the tenant are assigned to its arms (409 on a clash)."""
    check_spec(body, state.catalog, state.settings)
    with session_scope(state.engine) as session:
        view = experiment_view(store.create(session, tenant_id=tenant_id, spec=body))
    state.dispatcher.experiments.invalidate()
    return view


@router.get("")
def list_experiments(session: SessionDep, tenant_id: TenantDep) -> ExperimentList:
    """The tenant's experiments, newest first."""
    return ExperimentList(
        data=[experiment_view(r) for r in store.list_for(session, tenant_id=tenant_id)]
    )


@router.get("/{ref}")
def get_experiment(ref: str, session: SessionDep, tenant_id: TenantDep) -> ExperimentView:
    """One experiment by name or id."""
    return experiment_view(store.get(session, tenant_id=tenant_id, ref=ref))


@router.get("/{ref}/report")
def experiment_report(ref: str, session: SessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    """Per-arm jobs, success, fallback, cost, latency and quality with 95% intervals."""
    row = store.get(session, tenant_id=tenant_id, ref=ref)
    return report_for(session, tenant_id=tenant_id, row=row)


@router.post("/{ref}/stop")
def stop_experiment(ref: str, state: StateDep, tenant_id: TenantDep) -> ExperimentView:
    """Stop assigning new jobs (409 if already stopped); its report stays."""
    with session_scope(state.engine) as session:
        view = experiment_view(store.stop(session, tenant_id=tenant_id, ref=ref))
    state.dispatcher.experiments.invalidate()
    return view


@feedback.post("/{job_id}/feedback", status_code=status.HTTP_201_CREATED)
def job_feedback(
    job_id: str, body: FeedbackRequest, session: SessionDep, tenant_id: TenantDep
) -> FeedbackView:
    """Score a job's answer from 0 to 1; it counts in its experiment arm's quality."""
    row = store.add_feedback(
        session, tenant_id=tenant_id, job_id=job_id, score=body.score, comment=body.comment
    )
    created = aware(row.created_at)
    assert created is not None
    return FeedbackView(
        id=row.id,
        job_id=row.job_id,
        score=row.score,
        source=row.source,
        comment=row.comment,
        created_at=created,
    )
