"""Admission: validate, classify, write job rows, publish job ids.

Rows are committed before their messages are published, so a message never
names a job the database does not have. If publishing fails after the commit,
the jobs stay ``queued`` in the database, which is the source of truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from orchestrator.catalog import Catalog
from orchestrator.config import Settings
from orchestrator.errors import NoRoute, ValidationFailed
from orchestrator.metrics import JOBS_SUBMITTED
from orchestrator.queues import PRIORITY_VALUE, QueuedJob, publish
from orchestrator.routing import RouteDecision, StrengthPolicy, route
from orchestrator.schemas import JobRequest, Priority
from orchestrator.store import repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import Batch, new_id, utcnow
from orchestrator.tiers import Tier
from orchestrator.webhooks import check_callback_url

PRIORITY_NAME = {value: priority.value for priority, value in PRIORITY_VALUE.items()}


@dataclass(frozen=True)
class Routed:
    """One admitted line of a batch: where it was in the input, the request, its route."""

    index: int
    request: JobRequest
    decision: RouteDecision


@dataclass(frozen=True)
class BatchSpec:
    """A batch's own fields beyond its jobs (OpenAI's batch object, webhook, refused lines)."""

    input_file_id: str | None = None
    endpoint: str = "/v1/jobs"
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    rejected: tuple[dict[str, Any], ...] = ()

    def apply(self, batch: Batch) -> None:
        batch.input_file_id = self.input_file_id
        batch.endpoint = self.endpoint
        batch.batch_metadata = dict(self.metadata)
        batch.callback_url = self.callback_url
        batch.rejected = list(self.rejected)


@dataclass
class Dispatcher:
    """Turns accepted requests into queued jobs; one per API process."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    celery: Celery

    def __post_init__(self) -> None:
        _ = self.strength  # an unknown scorer or a bad calibration fails at start-up

    @cached_property
    def strength(self) -> StrengthPolicy:
        """The strong/weak scorer, calibration and default quality from the settings."""
        return StrengthPolicy.from_settings(self.settings)

    def decide(self, request: JobRequest, *, field: str = "body") -> RouteDecision:
        """Route one request, turning a routing refusal into a 422 naming the field."""
        if len(request.prompt_text()) > self.settings.max_prompt_chars:
            raise ValidationFailed(field, f"prompt longer than {self.settings.max_prompt_chars}")
        if request.callback_url is not None:
            check_callback_url(
                request.callback_url,
                allow_private=self.settings.webhook_allow_private,
                field=f"{field}.callback_url" if field != "body" else "callback_url",
            )
        try:
            return route(request, self.catalog, self.strength)
        except NoRoute as exc:
            raise ValidationFailed(field, str(exc)) from exc
        except ValidationFailed as exc:
            where = exc.field if field == "body" else f"{field}.{exc.field}"
            raise ValidationFailed(where, exc.message) from exc

    def submit_job(self, *, tenant_id: str, request: JobRequest) -> str:
        """Admit one interactive job; returns its id."""
        decision = self.decide(request)
        row = self._row(tenant_id, request, decision, Priority.INTERACTIVE)
        with session_scope(self.engine) as session:
            repo.insert_jobs(session, rows=[row])
        self._publish([row])
        return str(row["id"])

    def submit_batch(
        self, *, tenant_id: str, requests: Sequence[JobRequest], spec: BatchSpec | None = None
    ) -> str:
        """Admit a batch: every line is routed first, so one bad line refuses the whole batch."""
        if not requests:
            raise ValidationFailed("body", "a batch needs at least one job")
        self.check_batch_size(len(requests))
        routed = [Routed(i, r, self.decide(r, field=f"[{i}]")) for i, r in enumerate(requests)]
        return self.admit_batch(tenant_id=tenant_id, routed=routed, spec=spec)

    def check_batch_size(self, lines: int) -> None:
        if lines > self.settings.max_batch_jobs:
            raise ValidationFailed("body", f"at most {self.settings.max_batch_jobs} jobs per batch")

    def admit_batch(
        self, *, tenant_id: str, routed: Sequence[Routed], spec: BatchSpec | None = None
    ) -> str:
        """Write a batch of routed jobs (and the lines ``spec`` says were refused), then queue."""
        spec = spec or BatchSpec()
        with session_scope(self.engine) as session:
            batch = repo.create_batch(session, tenant_id=tenant_id, total=len(routed))
            spec.apply(batch)
            rows = [
                self._row(
                    tenant_id,
                    r.request,
                    r.decision,
                    Priority.BATCH,
                    batch_id=batch.id,
                    index=r.index,
                )
                for r in routed
            ]
            repo.insert_jobs(session, rows=rows)
            batch_id = batch.id
        self._publish(rows)
        return batch_id

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
        return {
            "id": new_id("job"),
            "tenant_id": tenant_id,
            "batch_id": batch_id,
            "batch_index": index,
            "custom_id": request.custom_id,
            "callback_url": request.callback_url,
            "status": "queued",
            "tier": decision.tier.value,
            "tier_reasons": list(decision.reasons),
            "plan": [d.name for d in decision.plan],
            "routing": decision.record(),
            "priority": PRIORITY_VALUE[priority],
            "request": request.model_dump(mode="json", exclude_none=True),
            "created_at": (now := utcnow()),
            "deadline_at": now + timedelta(seconds=self.settings.job_deadline_s),
        }

    def _publish(self, rows: Sequence[dict[str, Any]]) -> None:
        publish(
            self.celery,
            (QueuedJob(str(r["id"]), Tier(r["tier"]), int(r["priority"])) for r in rows),
        )
        counted = Counter(
            (str(r["tier"]), PRIORITY_NAME.get(int(r["priority"]), "other")) for r in rows
        )
        for (tier, priority), count in counted.items():
            JOBS_SUBMITTED.labels(tier, priority).inc(count)
