"""Admission of jobs that may wait (issue 26): held for a provider batch, not published.

Real Postgres and Redis (the session's); the dispatcher is the API's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.admission.dispatch import BatchSpec, Dispatcher
from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.queues.app import make_celery
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Job, Tenant
from orchestrator.store.provider_batch_models import ProviderBatchLine

pytestmark = pytest.mark.integration


@pytest.fixture
def dispatcher(
    database_url: str, redis_url: str, key_prefix: str, tmp_path: Path
) -> Iterator[tuple[Dispatcher, str]]:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=key_prefix,
        state_dir=tmp_path,
        provider_batch_enabled=True,
    )
    engine = get_engine(settings.effective_database_url)
    ensure_tenant_key(engine, state_dir=tmp_path, tenant="pbatch-admission")
    with session_scope(engine) as session:
        tenant_id = session.scalars(
            select(Tenant.id).where(Tenant.name == "pbatch-admission")
        ).one()
    celery = make_celery(settings)
    yield Dispatcher(settings, load_catalog(settings), engine, celery), tenant_id


def fast(**fields: object) -> JobRequest:
    return JobRequest.model_validate({"prompt": "Say hello.", "tier": "fast", **fields})


def test_a_job_with_a_window_is_held_for_a_provider_batch(
    dispatcher: tuple[Dispatcher, str],
) -> None:
    d, tenant_id = dispatcher
    # When a job with a 24h window is submitted
    job_id = d.submit_job(tenant_id=tenant_id, request=fast(completion_window="24h"))
    with session_scope(d.engine) as session:
        job = session.get(Job, job_id)
        line = session.get(ProviderBatchLine, job_id)
        assert job is not None and line is not None and job.deadline_at is not None
        # Then its routing says provider_batch, it may take 24h and runs synchronously
        # only near then, and its line waits for the first deployment's provider batch
        path = [s for s in job.routing if s["step"] == "path"]
        assert path and path[0]["choice"] == "provider_batch", job.routing
        assert job.status == "queued"
        window = (job.deadline_at - job.created_at).total_seconds()
        assert window == 86_400
        assert job.next_attempt_at is not None
        assert (job.deadline_at - job.next_attempt_at).total_seconds() == 1_800
        assert line.state == "waiting" and line.deployment == job.plan[0]
        assert line.input_tokens > 0


def test_an_openai_shape_batch_carries_its_window_to_every_line(
    dispatcher: tuple[Dispatcher, str],
) -> None:
    d, tenant_id = dispatcher
    # When a batch is submitted with a completion window (as the OpenAI shape does)
    spec = BatchSpec(endpoint="/v1/chat/completions", completion_window="24h")
    batch_id = d.submit_batch(tenant_id=tenant_id, requests=[fast(), fast()], spec=spec)
    with session_scope(d.engine) as session:
        jobs = session.scalars(select(Job).where(Job.batch_id == batch_id)).all()
        lines = session.scalars(
            select(ProviderBatchLine).where(ProviderBatchLine.job_id.in_([j.id for j in jobs]))
        ).all()
        # Then both are held, one line each
        assert len(jobs) == 2 and len(lines) == 2
        assert all(j.request["completion_window"] == "24h" for j in jobs)


def test_a_plain_job_is_not_held(dispatcher: tuple[Dispatcher, str]) -> None:
    d, tenant_id = dispatcher
    job_id = d.submit_job(tenant_id=tenant_id, request=fast())
    with session_scope(d.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.next_attempt_at is None
        assert not [s for s in job.routing if s["step"] == "path"]
        assert session.get(ProviderBatchLine, job_id) is None
