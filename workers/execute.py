"""One attempt loop over a job's route plan.

``execute(job_id)`` claims the job's lease (compare-and-set in the database),
calls the plan's deployments in order until one answers, records one attempt
row per call and one ledger row per billed call, and makes the job final. A
retryable provider error moves to the next deployment of the plan; a final one
(bad request, authentication, ...) ends the job.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import Engine

from orchestrator.catalog import Catalog, Deployment, load_catalog
from orchestrator.config import Settings, get_settings
from orchestrator.cost import cost_micro_usd
from orchestrator.schemas import Completion, JobRequest
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Job
from workers.providers import ProviderError, adapter_for


class Outcome(StrEnum):
    """What ``execute`` did with a message."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # lease held elsewhere or job already final
    LOST_LEASE = "lost_lease"


class Runtime:
    """Per-process resources shared by every worker thread: settings, catalog, pools."""

    def __init__(self, settings: Settings, catalog: Catalog, engine: Engine, http: httpx.Client):
        self.settings = settings
        self.catalog = catalog
        self.engine = engine
        self.http = http
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    def execute(self, job_id: str) -> Outcome:
        owner = f"{self.owner}:{threading.get_ident()}"
        with session_scope(self.engine) as session:
            job = repo.claim_job(
                session, job_id=job_id, owner=owner, lease_s=self.settings.job_lease_s
            )
            if job is None:
                return Outcome.SKIPPED
            session.expunge(job)
        request = JobRequest.model_validate(job.request)
        last_error = "empty route plan"
        for name in job.plan:
            deployment = self.catalog.find(name)
            if deployment is None:
                last_error = f"deployment {name!r} is no longer in the catalog"
                continue
            try:
                completion, latency_ms = self._call(deployment, request)
            except ProviderError as exc:
                self._record_failure(job, deployment, exc)
                last_error = str(exc)
                if exc.retryable:
                    continue
                return self._finish(job, owner, {"status": "failed", "error": last_error})
            return self._succeed(job, owner, deployment, completion, latency_ms)
        return self._finish(job, owner, {"status": "failed", "error": last_error})

    def _call(self, deployment: Deployment, request: JobRequest) -> tuple[Completion, int]:
        adapter = adapter_for(deployment, self.http, self.settings)
        started = time.perf_counter()
        completion = adapter.complete(deployment, request)
        return completion, int((time.perf_counter() - started) * 1000)

    def _record_failure(self, job: Job, deployment: Deployment, exc: ProviderError) -> None:
        record = repo.AttemptRecord(
            deployment=deployment.name,
            provider=deployment.provider,
            model=deployment.model,
            outcome=type(exc).__name__,
            latency_ms=0,
            http_status=exc.status,
            error=str(exc),
        )
        with session_scope(self.engine) as session:
            repo.record_attempt(session, job=job, record=record)

    def _succeed(
        self, job: Job, owner: str, deployment: Deployment, completion: Completion, latency_ms: int
    ) -> Outcome:
        usage = completion.usage
        cost = cost_micro_usd(deployment, usage)
        record = repo.AttemptRecord(
            deployment=deployment.name,
            provider=deployment.provider,
            model=deployment.model,
            outcome="ok",
            latency_ms=latency_ms,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_micro_usd=cost,
        )
        values: dict[str, Any] = {
            "status": "succeeded",
            "output": completion.text,
            "finish_reason": completion.finish_reason,
            "deployment": deployment.name,
            "provider": deployment.provider,
            "model": deployment.model,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "latency_ms": latency_ms,
        }
        with session_scope(self.engine) as session:
            repo.record_attempt(session, job=job, record=record)
            won = repo.finish_job(session, job_id=job.id, owner=owner, values=values)
        return Outcome.SUCCEEDED if won else Outcome.LOST_LEASE

    def _finish(self, job: Job, owner: str, values: dict[str, Any]) -> Outcome:
        with session_scope(self.engine) as session:
            won = repo.finish_job(session, job_id=job.id, owner=owner, values=values)
        if not won:
            return Outcome.LOST_LEASE
        return Outcome.SUCCEEDED if values["status"] == "succeeded" else Outcome.FAILED


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def build_runtime(settings: Settings) -> Runtime:
    """Resources for one process: catalog, DB engine, one pooled httpx client."""
    limits = httpx.Limits(
        max_connections=settings.worker_concurrency * 2,
        max_keepalive_connections=settings.worker_concurrency * 2,
    )
    http = httpx.Client(timeout=settings.provider_timeout_s, limits=limits)
    engine = get_engine(settings.effective_database_url, pool_size=settings.worker_concurrency)
    return Runtime(settings, load_catalog(settings), engine, http)


def runtime() -> Runtime:
    """The process-wide runtime, built on first use by any worker thread."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings())
        return _runtime
