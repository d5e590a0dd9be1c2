"""Admission: validate, classify, write job rows, publish job ids.

Rows are committed before their messages are published, so a message never
names a job the database does not have. If publishing fails after the commit,
the jobs stay ``queued`` in the database, which is the source of truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from itertools import islice
from typing import Any

import prometheus_client
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from orchestrator.admission.loop_writes import LoopWrites
from orchestrator.admission.session_hook import ConversationHook
from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import NoRoute, ValidationFailed
from orchestrator.core.loop_guard import NeedsIO, memory_only, needs_io
from orchestrator.core.schemas import JobRequest, Priority
from orchestrator.core.tiers import Tier
from orchestrator.costs.admission_hook import CostHook
from orchestrator.experiments.assignment import Enroller
from orchestrator.pipelines.planner import (
    check_prompt_sizes,
    insert_rows,
    publishable,
    route_job,
    row_inserts,
    split_pipelines,
)
from orchestrator.queues.app import PRIORITY_VALUE, QueuedJob, publish
from orchestrator.routing import RouteDecision, StrengthPolicy
from orchestrator.routing.batch_path import choose_path
from orchestrator.store import provider_batch_lines, repo
from orchestrator.store.db import session_scope, statement_scope
from orchestrator.store.models import Batch, new_id, utcnow
from orchestrator.store.provider_batch_lines import held_rows, sync_rows
from orchestrator.wire.webhooks import check_callback_url

JOBS_SUBMITTED = prometheus_client.Counter(
    "switchyard_jobs_submitted_total", "Jobs admitted by tier and priority", ["tier", "priority"]
)

INTERACTIVE_ADMISSIONS = prometheus_client.Counter(
    "switchyard_interactive_admissions_total",
    "Interactive jobs admitted, by where admission ran (the API's event loop or a thread)",
    ["on"],
)

PRIORITY_NAME = {value: priority.value for priority, value in PRIORITY_VALUE.items()}
# a batch's lines routed and made into rows between two inserts (``admit_batch``): one
# statement's worth (``store.bulk.CHUNK``)
PART_LINES = 500


@dataclass(frozen=True)
class Routed:
    """One admitted line of a batch: where it was in the input, the request, its route."""

    index: int
    request: JobRequest
    decision: RouteDecision


@dataclass(frozen=True)
class Lines:
    """A batch's lines, each routed as it is read (``route(index, request)``): a line that
    cannot be routed raises when it is reached, before anything is committed."""

    requests: Sequence[JobRequest]
    route: Callable[[int, JobRequest], Routed]

    def __len__(self) -> int:
        return len(self.requests)

    def __iter__(self) -> Iterator[Routed]:
        return (self.route(i, r) for i, r in enumerate(self.requests))


def _parts(items: Iterable[Routed], size: int) -> Iterator[list[Routed]]:
    found = iter(items)
    while part := list(islice(found, size)):
        yield part


@dataclass(frozen=True)
class BatchSpec:
    """A batch's own fields beyond its jobs (OpenAI's batch object, webhook, refused lines)."""

    input_file_id: str | None = None
    endpoint: str = "/v1/jobs"
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    rejected: tuple[dict[str, Any], ...] = ()
    completion_window: str | None = None  # its jobs may wait that long (provider batch)

    def apply(self, batch: Batch) -> None:
        batch.input_file_id = self.input_file_id
        batch.endpoint = self.endpoint
        batch.batch_metadata = dict(self.metadata)
        batch.callback_url = self.callback_url
        batch.rejected = list(self.rejected)
        if self.completion_window is not None:
            batch.completion_window = self.completion_window

    def applied(self, request: JobRequest) -> JobRequest:
        """A line's request with the batch's completion window, unless it names its own."""
        if self.completion_window is None or request.completion_window is not None:
            return request
        return request.model_copy(update={"completion_window": self.completion_window})


@dataclass(frozen=True)
class _One:
    """One interactive job, routed: its row, budget share and input tokens; ``plain`` if
    its admission is one ``INSERT`` (no pipeline, no provider batch)."""

    row: dict[str, Any]
    shares: list[int]
    tokens: int
    plain: bool

    @property
    def job_id(self) -> str:
        return str(self.row["id"])


@dataclass
class Dispatcher:
    """Turns accepted requests into queued jobs; one per API process."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    celery: Celery
    loop_writes: LoopWrites | None = None  # the API's, for admission on its event loop

    def __post_init__(self) -> None:
        _ = self.strength  # an unknown scorer or a bad calibration fails at start-up

    @cached_property
    def strength(self) -> StrengthPolicy:
        """The strong/weak scorer, calibration and default quality from the settings."""
        return StrengthPolicy.from_settings(self.settings)

    @cached_property
    def conversations(self) -> ConversationHook:
        """The session and response-cache hook: cache mode, session affinity (CONTEXT.md)."""
        return ConversationHook(self.engine)

    @cached_property
    def costs(self) -> CostHook:
        """Tenant objectives, live statistics and budget reservations (COSTS.md)."""
        return CostHook.from_settings(self.settings, self.engine, self.catalog)

    @cached_property
    def experiments(self) -> Enroller:
        """The experiment hook: assigns enrolled jobs to an arm and applies its strategy."""
        return Enroller(self.settings, self.catalog, self.engine, self.strength)

    def decide(self, request: JobRequest, *, field: str = "body") -> RouteDecision:
        """Route one request, turning a routing refusal into a 422 naming the field."""
        if len(request.prompt_text()) > self.settings.max_prompt_chars:
            raise ValidationFailed(field, f"prompt longer than {self.settings.max_prompt_chars}")
        if request.callback_url is not None:
            needs_io("the callback host's addresses")
            check_callback_url(
                request.callback_url,
                allow_private=self.settings.webhook_allow_private,
                field=f"{field}.callback_url" if field != "body" else "callback_url",
            )
        try:
            check_prompt_sizes(request, self.settings.max_prompt_chars)  # before any rendering
            return route_job(request, self.catalog, self.strength)
        except NoRoute as exc:
            raise ValidationFailed(field, str(exc)) from exc
        except ValidationFailed as exc:
            where = exc.field if field == "body" else f"{field}.{exc.field}"
            raise ValidationFailed(where, exc.message) from exc

    def submit_job(self, *, tenant_id: str, request: JobRequest) -> str:
        """Admit one interactive job; returns its id."""
        one = self._one(tenant_id, request)
        scope = statement_scope if one.plain else session_scope  # one INSERT: no BEGIN
        with (
            self.costs.reserved(tenant_id, one.job_id, [one.row], one.shares),
            scope(self.engine) as session,
        ):
            rows = split_pipelines([one.row])  # a pipeline: its parent row and its first step
            insert_rows(session, rows)
            provider_batch_lines.hold(session, rows, {one.job_id: one.tokens})
        self._publish(sync_rows(publishable(rows)))
        INTERACTIVE_ADMISSIONS.labels("thread").inc()
        return one.job_id

    async def asubmit_job(self, *, tenant_id: str, request: JobRequest) -> str:
        """``submit_job`` from the event loop: on the loop itself when admission needs
        nothing but memory (``core.loop_guard``; the row and message sent by
        ``loop_writes``), else in a thread. Only for a small request: routing a long
        prompt takes milliseconds of CPU."""
        writes = self.loop_writes
        try:  # nothing is written until admission is known to need nothing but memory
            if writes is None or not await writes.ready():
                raise NeedsIO("the event loop's connections")
            with memory_only():
                if self.costs.budgets.policy(tenant_id).limited:  # known before routing
                    raise NeedsIO("a budget reservation")
                one = self._one(tenant_id, request)
                if not one.plain:
                    raise NeedsIO("a transaction: a pipeline, or a provider batch's line")
                if any(one.shares):  # the tenant's budget arrived meanwhile
                    raise NeedsIO("a budget reservation")
        except NeedsIO:
            return await run_in_threadpool(self.submit_job, tenant_id=tenant_id, request=request)
        # no budget: nothing to reserve (``costs.reserved`` would hold nothing either)
        await writes.insert([one.row])
        await writes.publish(self._queued([one.row]))
        self._count([one.row])
        INTERACTIVE_ADMISSIONS.labels("event_loop").inc()
        return one.job_id

    def _one(self, tenant_id: str, request: JobRequest) -> _One:
        """One interactive job's row, routed, with its budget share (nothing written)."""
        request = self.costs.defaults(tenant_id, request)
        decision = self.decide(request)
        row = self._row(tenant_id, request, decision, Priority.INTERACTIVE)
        # its budget reservation (a pipeline's: every step, held by its parent row)
        shares = self.costs.shares(tenant_id, [(row, request, decision.estimated_input_tokens)])
        held = bool(held_rows([row]))  # it waits for a provider batch (issue 26)
        plain = not request.steps and not held
        return _One(row, shares, decision.estimated_input_tokens, plain)

    def submit_batch(
        self, *, tenant_id: str, requests: Sequence[JobRequest], spec: BatchSpec | None = None
    ) -> str:
        """Admit a batch: every line is routed first, so one bad line refuses the whole batch."""
        if not requests:
            raise ValidationFailed("body", "a batch needs at least one job")
        self.check_batch_size(len(requests))

        def routed(index: int, request: JobRequest) -> Routed:
            request = self.costs.defaults(tenant_id, request)
            return Routed(index, request, self.decide(request, field=f"[{index}]"))

        return self.admit_batch(tenant_id=tenant_id, routed=Lines(requests, routed), spec=spec)

    def check_batch_size(self, lines: int) -> None:
        if lines > self.settings.max_batch_jobs:
            raise ValidationFailed("body", f"at most {self.settings.max_batch_jobs} jobs per batch")

    def admit_batch(
        self, *, tenant_id: str, routed: Sequence[Routed] | Lines, spec: BatchSpec | None = None
    ) -> str:
        """Write a batch of routed jobs (and the lines ``spec`` says were refused), then queue.

        One transaction. On Postgres, for a tenant without a budget, the rows are written a
        part at a time as ``routed`` gives them (``submit_batch``'s ``Lines`` route each
        line as it is read), each part inserted by Postgres while the next is routed and
        made (``planner.row_inserts``). Otherwise every line is routed before the
        transaction opens (SQLite holds its one write lock for the whole transaction), and
        a budget needs every row's share before any row is written.
        """
        spec = spec or BatchSpec()
        # no budget: nothing to reserve (``costs.reserved`` would hold nothing either)
        in_parts = self.engine.dialect.name == "postgresql"
        in_parts = in_parts and not self.costs.budgets.policy(tenant_id).limited
        # otherwise every line is routed before the transaction opens
        listed = None if in_parts else list(routed)
        with session_scope(self.engine) as session:
            batch = repo.create_batch(session, tenant_id=tenant_id, total=len(routed))
            spec.apply(batch)
            if listed is None:
                rows = self._rows_in_parts(session, tenant_id, batch.id, routed, spec)
            else:
                rows = self._rows_at_once(session, tenant_id, batch.id, listed, spec)
            batch_id = batch.id
        self._publish(sync_rows(publishable(rows)))
        return batch_id

    def _rows_in_parts(
        self,
        session: Session,
        tenant_id: str,
        batch_id: str,
        routed: Iterable[Routed],
        spec: BatchSpec,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        tokens: dict[str, int] = {}
        with row_inserts(session) as insert:
            for part in _parts(routed, PART_LINES):
                made = [self._batch_row(tenant_id, batch_id, spec, r) for r in part]
                for row, r in zip(made, part, strict=True):
                    tokens[str(row["id"])] = r.decision.estimated_input_tokens
                made = split_pipelines(made)
                insert(made)
                rows += made
        provider_batch_lines.hold(session, rows, tokens)  # those going by provider batch
        return rows

    def _rows_at_once(
        self,
        session: Session,
        tenant_id: str,
        batch_id: str,
        routed: Sequence[Routed],
        spec: BatchSpec,
    ) -> list[dict[str, Any]]:
        rows = [self._batch_row(tenant_id, batch_id, spec, r) for r in routed]
        made = [
            (row, r.request, r.decision.estimated_input_tokens)
            for row, r in zip(rows, routed, strict=True)
        ]
        shares = self.costs.shares(tenant_id, made)  # their reservation, held by the batch
        tokens = {str(row["id"]): n for row, _, n in made}
        with self.costs.reserved(tenant_id, batch_id, rows, shares):  # 402 over a budget
            rows = split_pipelines(rows)
            insert_rows(session, rows)
            provider_batch_lines.hold(session, rows, tokens)  # those going by provider batch
        return rows

    def _batch_row(
        self, tenant_id: str, batch_id: str, spec: BatchSpec, routed: Routed
    ) -> dict[str, Any]:
        request = spec.applied(routed.request)
        return self._row(
            tenant_id,
            request,
            routed.decision,
            Priority.BATCH,
            batch_id=batch_id,
            index=routed.index,
        )

    def _row(
        self,
        tenant_id: str,
        request: JobRequest,
        decision: RouteDecision,
        priority: Priority,
        *,
        batch_id: str | None = None,
        index: int | None = None,
    ) -> dict[str, Any]:
        job_id = new_id("job")
        joined = self.experiments.assign(
            tenant_id=tenant_id, job_id=job_id, request=request, decision=decision
        )
        if joined is not None:  # an experiment's arm re-routed it (EXPERIMENTS.md)
            request, decision = joined.request, joined.decision
        # cache mode and session affinity (CONTEXT.md)
        request, decision = self.conversations.apply(tenant_id, request, decision)
        path = choose_path(request, decision.plan, self.settings)  # sync or provider batch
        now = utcnow()
        deadline = now + timedelta(seconds=path.deadline_s)
        margin = timedelta(seconds=self.settings.provider_batch_sync_margin_s)
        return {
            "id": job_id,
            "tenant_id": tenant_id,
            "batch_id": batch_id,
            "batch_index": index,
            "custom_id": request.custom_id,
            "callback_url": request.callback_url,
            "status": "queued",
            "tier": decision.tier.value,
            "tier_reasons": list(decision.reasons),
            "plan": [d.name for d in decision.plan],
            "routing": decision.record() + ([joined.step] if joined else []) + path.steps(),
            "experiment_id": joined.experiment_id if joined else None,
            "experiment_arm": joined.arm if joined else None,
            "priority": PRIORITY_VALUE[priority],
            "request": request.model_dump(mode="json", exclude_none=True),
            "created_at": now,
            "deadline_at": deadline,
            # held for a provider batch: runs synchronously then if still unanswered
            "next_attempt_at": max(now, deadline - margin) if path.provider_batch else None,
        }

    def _publish(self, rows: Sequence[dict[str, Any]]) -> None:
        publish(self.celery, self._queued(rows), chunk=self.settings.batch_message_jobs)
        self._count(rows)

    @staticmethod
    def _queued(rows: Sequence[dict[str, Any]]) -> list[QueuedJob]:
        return [QueuedJob(str(r["id"]), Tier(r["tier"]), int(r["priority"])) for r in rows]

    @staticmethod
    def _count(rows: Sequence[dict[str, Any]]) -> None:
        counted = Counter(
            (str(r["tier"]), PRIORITY_NAME.get(int(r["priority"]), "other")) for r in rows
        )
        for (tier, priority), count in counted.items():
            JOBS_SUBMITTED.labels(tier, priority).inc(count)
