"""Experiments and job feedback in the database; every function takes ``tenant_id`` or an id
that admission already scoped.

    create / get (by name or id) / list / stop          one tenant's experiments
    running(session)                                    every running experiment (admission cache)
    pause_arm                                           the guardrail's write
    arm_outcomes / arm_calls / feedback_scores          what the report and the guardrail read
    add_feedback                                        a user's or the judge's score
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.experiment_specs import ExperimentSpec
from orchestrator.experiments.arm_stats import JobOutcome
from orchestrator.store.models import Attempt, Experiment, Job, JobFeedback, utcnow

FINAL = ("succeeded", "failed", "expired")


def create(
    session: Session, *, tenant_id: str, spec: ExperimentSpec, source: str = "api"
) -> Experiment:
    """Store a running experiment; 409 if the name is taken or a running one shares a tier."""
    taken = session.scalar(
        select(Experiment.id).where(Experiment.tenant_id == tenant_id, Experiment.name == spec.name)
    )
    if taken is not None:
        raise Conflict(f"an experiment named {spec.name!r} exists already")
    wanted = _tier_set(spec.tiers)
    for other in list_for(session, tenant_id=tenant_id, status="running"):
        if wanted is None or (theirs := _tier_set(other.tiers)) is None or wanted & theirs:
            raise Conflict(f"experiment {other.name!r} is running on the same tiers; stop it first")
    experiment = Experiment(
        tenant_id=tenant_id,
        name=spec.name,
        status="running",
        unit=spec.unit,
        tiers=[t.value for t in spec.tiers] if spec.tiers else None,
        control=spec.control_arm,
        arms=[a.model_dump(mode="json") for a in spec.arms],
        guardrail=spec.guardrail.model_dump(mode="json"),
        judge_share=spec.judge_share,
        paused={},
        source=source,
    )
    session.add(experiment)
    session.flush()
    return experiment


def _tier_set(tiers: Sequence[object] | None) -> set[str] | None:
    return None if not tiers else {str(t) for t in tiers}


def get(session: Session, *, tenant_id: str, ref: str) -> Experiment:
    """An experiment of the tenant by name or id; 404 otherwise (another tenant's included)."""
    found = session.scalar(
        select(Experiment).where(
            Experiment.tenant_id == tenant_id, (Experiment.name == ref) | (Experiment.id == ref)
        )
    )
    if found is None:
        raise NotFound(f"no experiment {ref!r}")
    return found


def list_for(session: Session, *, tenant_id: str, status: str | None = None) -> list[Experiment]:
    query = select(Experiment).where(Experiment.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Experiment.status == status)
    return list(session.scalars(query.order_by(Experiment.created_at.desc())))


def stop(session: Session, *, tenant_id: str, ref: str) -> Experiment:
    """Stop enrolling new jobs (409 if already stopped); the report stays readable."""
    experiment = get(session, tenant_id=tenant_id, ref=ref)
    if experiment.status != "running":
        raise Conflict(f"experiment {experiment.name!r} is already stopped")
    experiment.status = "stopped"
    experiment.stopped_at = utcnow()
    session.flush()
    return experiment


def running(session: Session) -> list[Experiment]:
    """Every running experiment of every tenant (the admission cache keys them by tenant)."""
    return list(session.scalars(select(Experiment).where(Experiment.status == "running")))


def pause_arm(session: Session, *, experiment_id: str, arm: str, reason: str) -> bool:
    """Record that the guardrail paused ``arm``; False if it was paused already."""
    experiment = session.scalar(
        select(Experiment).where(Experiment.id == experiment_id).with_for_update()
    )
    if experiment is None or arm in (experiment.paused or {}) or arm == experiment.control:
        return False
    experiment.paused = {
        **(experiment.paused or {}),
        arm: {"reason": reason, "paused_at": utcnow().isoformat()},
    }
    session.flush()
    return True


def arm_outcomes(session: Session, *, tenant_id: str, experiment_id: str) -> list[JobOutcome]:
    """Every finished job of the experiment, with what the per-arm figures are made of."""
    rows = session.execute(
        select(
            Job.experiment_arm,
            Job.status,
            Job.cost_micro_usd,
            Job.latency_ms,
            Job.deployment,
            Job.plan,
        ).where(
            Job.tenant_id == tenant_id, Job.experiment_id == experiment_id, Job.status.in_(FINAL)
        )
    ).all()
    return [
        JobOutcome(
            arm=str(r[0]),
            status=str(r[1]),
            cost_micro_usd=int(r[2] or 0),
            latency_ms=r[3],
            fell_back=r[4] is not None and bool(r[5]) and r[4] != r[5][0],
        )
        for r in rows
    ]


def arm_admitted(session: Session, *, tenant_id: str, experiment_id: str) -> dict[str, int]:
    """Jobs admitted per arm, final or not."""
    rows = session.execute(
        select(Job.experiment_arm, func.count())
        .where(Job.tenant_id == tenant_id, Job.experiment_id == experiment_id)
        .group_by(Job.experiment_arm)
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


@dataclass(frozen=True)
class ArmCounts:
    """What the guardrail compares: finished and failed jobs, calls and failed calls, cost."""

    jobs: int = 0
    failed_jobs: int = 0
    calls: int = 0
    failed_calls: int = 0
    cost_micro_usd: int = 0


def arm_counts(session: Session, *, experiment_id: str) -> dict[str, ArmCounts]:
    """Per arm: finished jobs and their cost, and every provider call made for the arm's jobs."""
    jobs = session.execute(
        select(
            Job.experiment_arm,
            func.count(),
            func.sum(case((Job.status != "succeeded", 1), else_=0)),
            func.sum(Job.cost_micro_usd),
        )
        .where(Job.experiment_id == experiment_id, Job.status.in_(FINAL))
        .group_by(Job.experiment_arm)
    ).all()
    calls = session.execute(
        select(
            Job.experiment_arm, func.count(), func.sum(case((Attempt.outcome != "ok", 1), else_=0))
        )
        .join(Attempt, Attempt.job_id == Job.id)
        .where(Job.experiment_id == experiment_id)
        .group_by(Job.experiment_arm)
    ).all()
    by_jobs = {str(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in jobs}
    by_calls = {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in calls}
    out: dict[str, ArmCounts] = {}
    for arm in by_jobs.keys() | by_calls.keys():  # calls count before their jobs finish
        count, failed, cost = by_jobs.get(arm, (0, 0, 0))
        made, bad = by_calls.get(arm, (0, 0))
        out[arm] = ArmCounts(count, failed, made, bad, cost)
    return out


def add_feedback(
    session: Session,
    *,
    tenant_id: str,
    job_id: str,
    score: float,
    source: str = "user",
    comment: str | None = None,
) -> JobFeedback:
    """Store a score for the tenant's job (404 for a job it does not own)."""
    owned = session.scalar(select(Job.id).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if owned is None:
        raise NotFound(f"no job {job_id!r}")
    row = JobFeedback(
        tenant_id=tenant_id, job_id=job_id, score=score, source=source, comment=comment
    )
    session.add(row)
    session.flush()
    return row


def feedback_scores(
    session: Session, *, tenant_id: str, experiment_id: str
) -> list[tuple[str, float]]:
    """(arm, score) for every score given to the experiment's jobs."""
    rows = session.execute(
        select(Job.experiment_arm, JobFeedback.score)
        .join(JobFeedback, JobFeedback.job_id == Job.id)
        .where(Job.tenant_id == tenant_id, Job.experiment_id == experiment_id)
    ).all()
    return [(str(r[0]), float(r[1])) for r in rows]
