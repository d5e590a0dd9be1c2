"""What a worker does for experiments after a job's delivery (EXPERIMENTS.md).

    a job of an experiment ended,   -> the guardrail checks its arms (at most every
    or was handed back (deferred)      ``min_interval_s`` per experiment and process)
                                    -> if it succeeded and is in the judge's sample,
                                       a grading job is admitted on the reasoning tier
    a grading job succeeded         -> its score is stored as the graded job's feedback

Called by the task body after ``Runtime.execute``; like the completion report, a
failure here is logged and never fails the job, whose result is already written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from orchestrator.core.schemas import JobRequest
from orchestrator.experiments import guardrail as experiment_guardrail
from orchestrator.experiments import judge as experiment_judge
from orchestrator.experiments import records as store
from orchestrator.store.db import session_scope
from orchestrator.store.models import Experiment, Job
from workers.execute import Outcome

log = logging.getLogger(__name__)
COUNTED = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED, Outcome.DEFERRED})
Submit = Callable[[str, JobRequest], str]
SHARE_TTL_S = 5.0


@dataclass
class ExperimentHook:
    """Runs the guardrail and the judge for finished jobs of experiments."""

    engine: Engine
    submit: Submit
    min_interval_s: float = 0.2
    _checked: dict[str, float] = field(default_factory=dict, init=False)
    _pending: set[str] = field(default_factory=set, init=False)
    _shares: dict[str, tuple[float, float]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def after(self, job_id: str, outcome: Outcome, *, claimed: Job | None = None) -> None:
        """Hook for one ended delivery: a final one, or one handed back after failed calls.

        ``claimed``: the row the worker claimed for this delivery, if it has it; its
        tenant, experiment and custom id then need no database read.
        """
        if outcome not in COUNTED:
            return
        try:
            self._after(job_id, outcome, claimed)
        except Exception as exc:  # the job's result is written; never fail it from here
            log.warning("experiment hook for %s failed: %s", job_id, type(exc).__name__)

    def _after(self, job_id: str, outcome: Outcome, claimed: Job | None) -> None:
        row: Any
        if claimed is not None:
            row = (claimed.tenant_id, claimed.experiment_id, claimed.custom_id)
        else:
            with session_scope(self.engine) as session:
                query = select(Job.tenant_id, Job.experiment_id, Job.custom_id)
                row = session.execute(query.where(Job.id == job_id)).one_or_none()
        if row is None:
            return
        tenant_id, experiment_id, custom_id = row
        graded = experiment_judge.graded_job(custom_id)
        if graded is not None and outcome is Outcome.SUCCEEDED:
            self._record_grade(tenant_id, job_id, graded)
        if experiment_id is None:
            return
        if self._due(experiment_id):
            self._check(experiment_id)
        if outcome is Outcome.SUCCEEDED:
            self._maybe_judge(tenant_id, job_id, experiment_id)

    def _due(self, experiment_id: str) -> bool:
        """Check now if the last check is ``min_interval_s`` old; else make sure one follows."""
        now = time.monotonic()
        with self._lock:
            wait_s = self.min_interval_s - (now - self._checked.get(experiment_id, -1e9))
            if wait_s <= 0:
                self._checked[experiment_id] = now
                return True
            if experiment_id not in self._pending:  # a trailing check sees the last jobs
                self._pending.add(experiment_id)
                timer = threading.Timer(wait_s, self._trailing, args=(experiment_id,))
                timer.daemon = True
                timer.start()
            return False

    def _trailing(self, experiment_id: str) -> None:
        with self._lock:
            self._pending.discard(experiment_id)
            self._checked[experiment_id] = time.monotonic()
        try:
            self._check(experiment_id)
        except Exception as exc:  # a timer thread: log, never raise
            log.warning("guardrail check of %s failed: %s", experiment_id, type(exc).__name__)

    def _check(self, experiment_id: str) -> None:
        paused = experiment_guardrail.check(self.engine, experiment_id)
        if paused:
            log.warning("experiment %s: guardrail paused arms %s", experiment_id, paused)

    def _record_grade(self, tenant_id: str, job_id: str, graded: str) -> None:
        with session_scope(self.engine) as session:
            output = session.scalar(select(Job.output).where(Job.id == job_id))
            score = experiment_judge.parse_score(output)
            if score is not None:
                store.add_feedback(
                    session, tenant_id=tenant_id, job_id=graded, score=score, source="judge"
                )

    def _judge_share(self, experiment_id: str) -> float:
        """The experiment's judge share, read at most every ``SHARE_TTL_S``."""
        now = time.monotonic()
        with self._lock:
            cached = self._shares.get(experiment_id)
        if cached is not None and now - cached[0] < SHARE_TTL_S:
            return cached[1]
        with session_scope(self.engine) as session:
            share = session.scalar(
                select(Experiment.judge_share).where(Experiment.id == experiment_id)
            )
        with self._lock:
            self._shares[experiment_id] = (now, float(share or 0.0))
        return float(share or 0.0)

    def _maybe_judge(self, tenant_id: str, job_id: str, experiment_id: str) -> None:
        share = self._judge_share(experiment_id)
        if not share or not experiment_judge.sampled(job_id, share):
            return
        with session_scope(self.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.output is None:
                return
            grading = experiment_judge.grading_request(job_id, job.request, job.output)
        self.submit(tenant_id, grading)


_hook: ExperimentHook | None = None
_hook_lock = threading.Lock()


def experiment_hook() -> ExperimentHook:
    """The process-wide hook; grading jobs are admitted by a dispatcher on the worker's app."""
    global _hook
    with _hook_lock:
        if _hook is None:
            from orchestrator.admission.dispatch import Dispatcher
            from workers.app import app
            from workers.runtime import runtime

            rt = runtime()
            dispatcher = Dispatcher(rt.settings, rt.catalog, rt.engine, app)

            def submit(tenant_id: str, request: JobRequest) -> str:
                return dispatcher.submit_job(tenant_id=tenant_id, request=request)

            _hook = ExperimentHook(rt.engine, submit)
        return _hook
