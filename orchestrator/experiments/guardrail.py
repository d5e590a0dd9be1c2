"""The guardrail: pause an arm that does clearly worse than control, before it does more harm.

An arm is paused if

    error_rate(arm) - error_rate(control) > max_error_rate_increase   (absolute), judged
        once both made ``min_jobs`` provider calls (or finished as many jobs), or
    cost_per_job(arm) > max_cost_ratio x cost_per_job(control), judged once both
        finished ``min_jobs`` jobs

where an arm's error rate is the larger of its failed-call share (provider calls
that did not answer, retries included) and its failed-job share. Calls count
while jobs are still running, so an arm whose failures open its breakers (its
jobs then wait) is judged without waiting for them. A paused arm gets no new
units: admission sends them to control (``routing.experiments``); jobs already
admitted run as planned. Workers call ``check`` after each delivery of an
experiment's job (``workers.experiments``), so an arm is paused within
``min_jobs`` plus the jobs in flight when it crosses the limit.
"""

from __future__ import annotations

from sqlalchemy import Engine

from orchestrator.core.experiment_specs import GuardrailSpec
from orchestrator.experiments import records as store
from orchestrator.experiments.records import ArmCounts
from orchestrator.store.db import session_scope
from orchestrator.store.models import Experiment


def error_rate(counts: ArmCounts) -> float:
    """The larger of the failed-call share and the failed-job share (0 with no data)."""
    calls = counts.failed_calls / counts.calls if counts.calls else 0.0
    jobs = counts.failed_jobs / counts.jobs if counts.jobs else 0.0
    return max(calls, jobs)


def cost_per_job(counts: ArmCounts) -> float:
    return counts.cost_micro_usd / counts.jobs if counts.jobs else 0.0


def breaches(
    counts: dict[str, ArmCounts], *, control: str, limits: GuardrailSpec, skip: set[str]
) -> dict[str, str]:
    """Arms (other than control and ``skip``) over a limit, with the reason for each."""
    base = counts.get(control, ArmCounts())
    found: dict[str, str] = {}
    for arm, seen in counts.items():
        if arm == control or arm in skip:
            continue
        reason = _error_breach(seen, base, limits) or _cost_breach(seen, base, limits)
        if reason is not None:
            found[arm] = reason
    return found


def _error_breach(seen: ArmCounts, base: ArmCounts, limits: GuardrailSpec) -> str | None:
    """Judged once both arms made ``min_jobs`` calls (or finished as many jobs)."""
    limit = limits.max_error_rate_increase
    evidence = min(max(seen.calls, seen.jobs), max(base.calls, base.jobs))
    if limit is None or evidence < limits.min_jobs:
        return None
    gap = error_rate(seen) - error_rate(base)
    if gap <= limit:
        return None
    return (
        f"error rate {error_rate(seen):.3f} vs control {error_rate(base):.3f}"
        f" (+{gap:.3f} > {limit:g}) after {seen.calls} calls, {seen.jobs} finished jobs"
    )


def _cost_breach(seen: ArmCounts, base: ArmCounts, limits: GuardrailSpec) -> str | None:
    """Judged once both arms finished ``min_jobs`` jobs."""
    ratio = limits.max_cost_ratio
    if ratio is None or min(seen.jobs, base.jobs) < limits.min_jobs:
        return None
    if not cost_per_job(seen) > ratio * cost_per_job(base) > 0:
        return None
    return (
        f"cost per job {cost_per_job(seen):.0f} vs control {cost_per_job(base):.0f}"
        f" micro-USD (over {ratio:g}x) after {seen.jobs} jobs"
    )


def check(engine: Engine, experiment_id: str) -> list[str]:
    """Pause every arm of a running experiment that breaches a limit; returns those paused now."""
    with session_scope(engine) as session:
        experiment = session.get(Experiment, experiment_id)
        if experiment is None or experiment.status != "running":
            return []
        limits = GuardrailSpec.model_validate(experiment.guardrail or {})
        counts = store.arm_counts(session, experiment_id=experiment_id)
        found = breaches(
            counts, control=experiment.control, limits=limits, skip=set(experiment.paused or {})
        )
    paused = []
    for arm, reason in found.items():
        with session_scope(engine) as session:
            if store.pause_arm(session, experiment_id=experiment_id, arm=arm, reason=reason):
                paused.append(arm)
    return paused
