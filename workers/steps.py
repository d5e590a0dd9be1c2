"""Pipeline steps on the worker side: what happens when a step (a job with a parent) ends.

``PipelineHook.on_final`` runs inside the transaction that makes a step final,
right after the lease compare-and-set succeeded, so it runs at most once per step:

    step succeeded, more steps  -> render and route the next step, insert its row
                                   (queued; unique per parent and index), return it
                                   to publish after the commit
    step succeeded, last step   -> the parent succeeds with the step's output
    step failed / expired       -> the parent fails (or expires) naming the step

Either way the parent's cost and attempts become the sums over its steps. If the
worker dies before the commit, nothing of this happened: the step is re-run
after its lease expires and the earlier steps are untouched. If it dies after the
commit but before publishing, the reconciler finds the queued step without a
message and publishes it (``lifecycle.lost_waiting``). See PIPELINES.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import NoRoute, ValidationFailed
from orchestrator.core.pipeline_schemas import step_names
from orchestrator.core.schemas import JobRequest, JobStatus
from orchestrator.core.tiers import Tier
from orchestrator.pipelines.planner import route_request, routing_columns, step_request, step_row
from orchestrator.queues.app import QueuedJob
from orchestrator.routing import StrengthPolicy
from orchestrator.store import repo
from orchestrator.store.models import Job, utcnow

log = logging.getLogger(__name__)
Publisher = Callable[[Sequence[QueuedJob]], None]
PARENT_COLUMNS = ("id", "tenant_id", "priority", "deadline_at")
SUMMED = ("cost_micro_usd", "attempts", "input_tokens", "output_tokens", "latency_ms")


@dataclass
class PipelineHook:
    """Advances pipeline jobs when one of their steps ends; one per worker process."""

    settings: Settings
    catalog: Catalog
    publisher: Publisher | None = None
    _policy: StrengthPolicy | None = field(default=None, repr=False)
    _celery: Any = field(default=None, repr=False)

    @property
    def policy(self) -> StrengthPolicy:
        if self._policy is None:
            self._policy = StrengthPolicy.from_settings(self.settings)
        return self._policy

    def on_final(self, session: Session, step: Job, values: dict[str, Any]) -> list[QueuedJob]:
        """The step just became final with ``values``; advance or end its parent."""
        if step.parent_job_id is None:
            return []
        parent = session.scalar(  # locked: a concurrent cancel waits, or we see it
            select(Job)
            .where(Job.id == step.parent_job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if parent is None or parent.status != JobStatus.RUNNING.value:
            return []  # cancelled or expired meanwhile: nothing more to run
        index = step.step_index or 0
        status = values.get("status")
        try:
            request = JobRequest.model_validate(parent.request)
        except ValidationError as exc:  # stored before admission refused it: end, don't raise
            error = f"step {index} {status}; the pipeline's stored request is not valid: {exc}"
            failed = {"status": JobStatus.FAILED.value, "error": error[:1000]}
            self._end_parent(session, parent, failed)
            return []
        steps = request.steps or []
        if status != JobStatus.SUCCEEDED.value:
            name = step_names(steps)[index]
            error = f"step {index} ({name}) {status}: {values.get('error')}"
            self._end_parent(session, parent, {"status": status, "error": error})
            return []
        if index + 1 >= len(steps):
            self._end_parent(session, parent, _parent_result(values))
            return []
        return self._next_step(session, parent, request, index + 1)

    @staticmethod
    def is_parent(job: Job) -> bool:
        """A pipeline's parent row (never run itself; a re-drive publishes it to resume)."""
        return job.parent_job_id is None and bool((job.request or {}).get("steps"))

    def resume(self, session: Session, parent: Job, owner: str) -> list[QueuedJob]:
        """A re-driven parent (its lease held by ``owner``): run its last step again, or on.

        The first step that did not succeed is queued again with the parent's new
        deadline; succeeded steps are kept (their outputs feed the next one). The
        parent then runs through its steps again, holding no lease.
        """
        request = JobRequest.model_validate(parent.request)
        last = session.scalar(
            select(Job)
            .where(Job.parent_job_id == parent.id)
            .order_by(Job.step_index.desc())
            .limit(1)
        )
        running = {
            "status": JobStatus.RUNNING.value,
            "lease_owner": None,
            "lease_expires_at": None,
            "finished_at": None,
            "error": None,
        }
        released = session.execute(
            update(Job)
            .where(Job.id == parent.id, Job.lease_owner == owner)
            .values(**running)
            .execution_options(synchronize_session=False)
        )
        if released.rowcount != 1:  # type: ignore[attr-defined]
            return []
        if last is None:
            return self._next_step(session, parent, request, 0)
        if not JobStatus(last.status).final:  # its own message (or the reconciler) runs it
            session.execute(
                update(Job).where(Job.id == last.id).values(deadline_at=parent.deadline_at)
            )
            return []
        if last.status != JobStatus.SUCCEEDED.value:
            return [_redrive_step(session, last, parent)]
        values = {"status": last.status, "output": last.output, "deployment": last.deployment}
        return self.on_final(session, last, {**values, "provider": last.provider})

    def publish(self, queued: Sequence[QueuedJob]) -> None:
        """Send the new steps' messages; if that fails, the reconciler sends them later."""
        if not queued:
            return
        try:
            (self.publisher or self._default_publisher)(queued)
        except Exception as exc:  # the step row is committed; the reconciler recovers it
            log.warning("could not publish %d pipeline step(s): %s", len(queued), exc)

    def _default_publisher(self, queued: Sequence[QueuedJob]) -> None:
        from orchestrator.queues.app import make_celery, publish

        if self._celery is None:
            self._celery = make_celery(self.settings)
        publish(self._celery, [_linked(q) for q in queued])

    def _next_step(
        self, session: Session, parent: Job, request: JobRequest, index: int
    ) -> list[QueuedJob]:
        outputs = _outputs(session, parent.id, step_names(request.steps or []))
        try:  # a prompt the outputs would make too long is refused before it is built
            nxt = step_request(request, index, outputs, max_chars=self.settings.max_prompt_chars)
            decision = route_request(nxt, self.catalog, self.policy)
        except (NoRoute, ValidationFailed) as exc:
            error = f"step {index} cannot be routed: {exc}"
            self._end_parent(session, parent, {"status": JobStatus.FAILED.value, "error": error})
            return []
        columns = {c: getattr(parent, c) for c in PARENT_COLUMNS}
        row = step_row(columns, index, nxt, routing_columns(decision))
        repo.insert_jobs(session, rows=[row])
        self._sum_steps(session, parent.id, {})
        return [QueuedJob(row["id"], Tier(row["tier"]), int(row["priority"]))]

    def _end_parent(self, session: Session, parent: Job, values: dict[str, Any]) -> None:
        done = {"finished_at": utcnow(), "lease_expires_at": None, "next_attempt_at": None}
        self._sum_steps(session, parent.id, {**values, **done})

    def _sum_steps(self, session: Session, parent_id: str, values: dict[str, Any]) -> None:
        """The parent's cost, attempts, tokens and latency are its steps' sums."""
        child = aliased(Job)

        def total(column: Any) -> Any:
            query = select(func.coalesce(func.sum(column), 0))
            return query.where(child.parent_job_id == parent_id).scalar_subquery()

        sums = {name: total(getattr(child, name)) for name in SUMMED}
        session.execute(
            update(Job)
            .where(Job.id == parent_id, Job.status == JobStatus.RUNNING.value)
            .values(**sums, **values)
            .execution_options(synchronize_session=False)
        )


def _linked(queued: QueuedJob) -> QueuedJob:
    """The message linked to the task running now (Flower: parent and root task)."""
    from celery._state import get_current_worker_task

    task = get_current_worker_task()
    if task is None or not task.request.id:
        return queued
    root = task.request.root_id or task.request.id
    return replace(queued, parent_task_id=task.request.id, root_task_id=root)


def _redrive_step(session: Session, step: Job, parent: Job) -> QueuedJob:
    """Queue a failed, expired or cancelled step again, within the parent's deadline."""
    session.execute(
        update(Job)
        .where(Job.id == step.id)
        .values(
            status=JobStatus.QUEUED.value,
            error=None,
            finished_at=None,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            progress={},
            lease_expiries=0,
            deadline_at=parent.deadline_at,
            requeued_at=utcnow(),
            redrives=Job.redrives + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return QueuedJob(step.id, Tier(step.tier), int(step.priority))


def _outputs(session: Session, parent_id: str, names: Sequence[str]) -> dict[str, str]:
    """The outputs of the parent's succeeded steps, by step name."""
    rows = session.execute(
        select(Job.step_index, Job.output).where(
            Job.parent_job_id == parent_id, Job.status == JobStatus.SUCCEEDED.value
        )
    ).all()
    return {names[i]: out or "" for i, out in rows if i is not None and i < len(names)}


def _parent_result(values: dict[str, Any]) -> dict[str, Any]:
    """The parent's columns when its last step succeeded: that step's answer."""
    keys = ("status", "output", "tool_calls", "finish_reason", "deployment", "provider", "model")
    return {k: values[k] for k in keys if k in values} | {"error": None}
