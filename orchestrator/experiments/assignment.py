"""Experiment arms at admission: which arm a job lands in, and how the arm changes its route.

    bucket   = sha256("<experiment name>:<unit>") mod 10,000   deterministic and sticky
    arm      = the arm whose cumulative weight covers the bucket; a paused arm's
               units go to control (the guardrail paused it)
    unit     = the tenant id, the request's session (``session_id``, or
               ``metadata["session_id"]``), or the job id

The arm's strategy then routes the job, over the cluster's defaults and over the
request's own ``quality`` and ``objective`` (a tenant's default objective included):

    scorer / threshold / quality  -> the StrengthPolicy that decides strong or weak
    objective                     -> ``JobRequest.objective`` (plan order, issue 8)
    deployments                   -> the route plan keeps only these (unchanged if
                                     none of them serves the job's tier)

A request that names a ``model``, a pipeline (``steps``) or cascade (``strategy``), a
grading job (``metadata["switchyard_judge_for"]``) and a job outside the experiment's
``tiers`` are not enrolled.
``Enroller`` is the hook the dispatcher calls; it caches running experiments for
``ttl_s`` so a pause or a new experiment takes effect within that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine

from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError, NoRoute, ValidationFailed
from orchestrator.core.experiment_specs import ArmSpec, ExperimentSpec
from orchestrator.core.loop_guard import needs_io
from orchestrator.core.schemas import JobRequest
from orchestrator.experiments import records as store
from orchestrator.routing import RouteDecision, StrengthPolicy, route
from orchestrator.routing import calibration as calibrations
from orchestrator.routing.calibration import Calibration
from orchestrator.routing.scorers import SCORERS, get_scorer
from orchestrator.store.db import session_scope
from orchestrator.store.models import Experiment

BUCKETS = 10_000
JUDGE_KEY = "switchyard_judge_for"


def bucket(experiment: str, unit: str) -> int:
    """The unit's bucket in [0, BUCKETS): the same experiment (name) and unit, the same bucket."""
    digest = hashlib.sha256(f"{experiment}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def pick_arm(
    experiment: str,
    unit: str,
    arms: Sequence[tuple[str, float]],
    *,
    control: str,
    paused: frozenset[str] = frozenset(),
) -> str:
    """The arm for ``unit`` by weight; a paused arm's units fall back to ``control``."""
    point = bucket(experiment, unit) / BUCKETS * sum(w for _, w in arms)
    chosen, covered = arms[-1][0], 0.0
    for name, weight in arms:
        covered += weight
        if point < covered:
            chosen = name
            break
    return control if chosen in paused else chosen


@dataclass(frozen=True)
class ActiveExperiment:
    """A running experiment as admission needs it (read from its row, cached)."""

    id: str
    tenant_id: str
    name: str
    unit: str
    tiers: frozenset[str] | None
    control: str
    arms: tuple[ArmSpec, ...]
    paused: frozenset[str]

    @classmethod
    def of(cls, row: Experiment) -> ActiveExperiment:
        return cls(
            row.id,
            row.tenant_id,
            row.name,
            row.unit,
            frozenset(row.tiers) if row.tiers else None,
            row.control,
            tuple(ArmSpec.model_validate(a) for a in row.arms),
            frozenset(row.paused or {}),
        )

    def arm(self, name: str) -> ArmSpec:
        return next(a for a in self.arms if a.name == name)

    def unit_of(self, *, tenant_id: str, job_id: str, request: JobRequest) -> str | None:
        """The value assignment hashes; None (not enrolled) for a session unit without one."""
        if self.unit == "tenant":
            return tenant_id
        if self.unit == "job":
            return job_id
        session = getattr(request, "session_id", None) or request.metadata.get("session_id")
        return str(session) if session else None

    def enrolls(self, request: JobRequest, decision: RouteDecision) -> bool:
        if request.model is not None or JUDGE_KEY in request.metadata:
            return False
        if getattr(request, "steps", None) or getattr(request, "strategy", None):
            return False  # pipelines and cascades plan their own deployments
        return self.tiers is None or decision.tier.value in self.tiers


@dataclass(frozen=True)
class Assignment:
    """Where admission put a job: the experiment, the arm, the re-routed request and plan."""

    experiment_id: str
    arm: str
    request: JobRequest
    decision: RouteDecision
    step: dict[str, Any]


@dataclass(frozen=True)
class FixedThreshold(Calibration):
    """A calibration that answers one fixed threshold, for an arm that sets ``threshold``."""

    fixed: float = 0.5

    def threshold_for(self, strong_share: float) -> float:
        return 0.0 if strong_share >= 1.0 else 1.0 if strong_share <= 0.0 else self.fixed


def check_spec(spec: ExperimentSpec, catalog: Catalog, settings: Settings) -> None:
    """Refuse (422 naming the field) an arm with an unknown scorer or deployment."""
    names = {d.name for d in catalog.deployments}
    for i, arm in enumerate(spec.arms):
        if arm.scorer is not None and arm.scorer not in SCORERS:
            raise ValidationFailed(f"arms[{i}].scorer", f"unknown scorer {arm.scorer!r}")
        unknown = sorted(set(arm.deployments or ()) - names)
        if unknown:
            raise ValidationFailed(f"arms[{i}].deployments", f"unknown deployments {unknown}")
        try:
            policy_for(arm, StrengthPolicy.from_settings(settings), settings)
        except ConfigError as exc:
            raise ValidationFailed(f"arms[{i}].scorer", str(exc)) from exc


def policy_for(arm: ArmSpec, base: StrengthPolicy, settings: Settings) -> StrengthPolicy:
    """The strong/weak policy of an arm: its scorer, threshold and quality over the defaults."""
    policy = base
    if arm.scorer is not None and arm.scorer != base.scorer.name:
        table = calibrations.load(settings.router_calibration_path, arm.scorer)
        policy = StrengthPolicy(get_scorer(arm.scorer), table, base.quality)
    if arm.threshold is not None:
        table = policy.calibration
        fixed = FixedThreshold(table.scorer, table.quantiles, table.source, arm.threshold)
        policy = StrengthPolicy(policy.scorer, fixed, 0.5)
    elif arm.quality is not None:
        policy = StrengthPolicy(policy.scorer, policy.calibration, arm.quality)
    return policy


def arm_request(arm: ArmSpec, request: JobRequest) -> tuple[JobRequest, list[str]]:
    """The request as the arm routes it: the arm's objective and quality replace the request's."""
    updates: dict[str, Any] = {}
    if arm.objective is not None:
        updates["objective"] = arm.objective
    if arm.quality is not None or arm.threshold is not None:
        updates["quality"] = arm.quality  # a threshold arm: the fixed threshold decides
    changed = {k: v for k, v in updates.items() if getattr(request, k, None) != v}
    if not changed:
        return request, []
    reasons = [f"arm sets {k}={v!r}" for k, v in changed.items()]
    return request.model_copy(update=changed), reasons


@dataclass
class Enroller:
    """The admission hook: assigns enrolled jobs to arms and applies the arm's strategy."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    base: StrengthPolicy
    ttl_s: float = 1.0
    _loaded_at: float = field(default=-1e9, init=False)
    _by_tenant: dict[str, list[ActiveExperiment]] = field(default_factory=dict, init=False)
    _policies: dict[str, StrengthPolicy] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def invalidate(self) -> None:
        """Forget the cache (after this process created, stopped or paused an experiment)."""
        with self._lock:
            self._loaded_at = -1e9

    def active(self, tenant_id: str) -> list[ActiveExperiment]:
        """The tenant's running experiments, at most ``ttl_s`` old.

        A fresh cache is read without the lock, which a refreshing thread holds during its
        database read: the event loop (``core.loop_guard``) must not wait on it.
        """
        if time.monotonic() - self._loaded_at > self.ttl_s:
            needs_io("the running experiments")
            with self._lock:
                if time.monotonic() - self._loaded_at > self.ttl_s:
                    with session_scope(self.engine) as session:
                        rows = [ActiveExperiment.of(r) for r in store.running(session)]
                    by_tenant: dict[str, list[ActiveExperiment]] = {}
                    for row in rows:
                        by_tenant.setdefault(row.tenant_id, []).append(row)
                    self._by_tenant = by_tenant  # replaced whole: readers take no lock
                    self._loaded_at = time.monotonic()
        return list(self._by_tenant.get(tenant_id, ()))

    def assign(
        self, *, tenant_id: str, job_id: str, request: JobRequest, decision: RouteDecision
    ) -> Assignment | None:
        """The job's arm and its re-routed plan, or None if no running experiment enrolls it."""
        for experiment in self.active(tenant_id):
            if not experiment.enrolls(request, decision):
                continue
            unit = experiment.unit_of(tenant_id=tenant_id, job_id=job_id, request=request)
            if unit is None:
                continue
            weights = [(a.name, a.weight) for a in experiment.arms]
            drawn = pick_arm(experiment.name, unit, weights, control=experiment.control)
            name = experiment.control if drawn in experiment.paused else drawn
            assigned = self._apply(experiment, experiment.arm(name), unit, request, decision)
            if drawn != name:
                assigned.step["reasons"].append(f"arm {drawn!r} is paused: control instead")
            return assigned
        return None

    def _apply(
        self,
        experiment: ActiveExperiment,
        arm: ArmSpec,
        unit: str,
        request: JobRequest,
        decision: RouteDecision,
    ) -> Assignment:
        changed, reasons = arm_request(arm, request)
        strategy = arm.scorer is not None or arm.threshold is not None or arm.quality is not None
        if strategy or changed is not request:
            try:
                decision = route(changed, self.catalog, self._policy(arm))
            except (NoRoute, ValidationFailed) as exc:  # keep the default route, say why
                changed, reasons = request, [f"arm strategy not applied: {exc}"]
        if arm.deployments:
            kept = tuple(d for d in decision.plan if d.name in arm.deployments)
            if kept:
                decision = replace(decision, plan=kept)
                reasons.append(f"plan limited to {list(arm.deployments)}")
            else:
                reasons.append(f"none of {list(arm.deployments)} serves '{decision.tier}'")
        share = bucket(experiment.name, unit) / BUCKETS
        reasons.insert(0, f"{experiment.unit} unit bucket {share:.4f}")
        step = {
            "step": "experiment",
            "choice": arm.name,
            "scorer": f"experiment:{experiment.name}",
            "score": share,
            "threshold": None,
            "quality": None,
            "reasons": reasons,
        }
        return Assignment(experiment.id, arm.name, changed, decision, step)

    def _policy(self, arm: ArmSpec) -> StrengthPolicy:
        key = f"{arm.scorer}|{arm.threshold}|{arm.quality}"
        found = self._policies.get(key)  # without the lock, as ``active``
        if found is not None:
            return found
        needs_io("an arm's scorer and calibration files")  # read once, under the lock
        with self._lock:
            if key not in self._policies:
                self._policies[key] = policy_for(arm, self.base, self.settings)
            return self._policies[key]
