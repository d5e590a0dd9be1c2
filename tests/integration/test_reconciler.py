"""The reconciler against a real Redis and a private database: what it re-publishes, and when."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from orchestrator.core.config import Settings
from orchestrator.services.reconciler import Reconciler, build_reconciler
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Job, new_id, utcnow
from tests.integration.reliability import private_database

pytestmark = pytest.mark.integration
__all__ = ["private_database"]


@pytest.fixture
def reconciler(private_database: str, redis_url: str) -> Iterator[Reconciler]:
    prefix = f"sytest-rec-{secrets.token_hex(4)}:"
    settings = Settings(
        database_url=private_database,
        redis_url=redis_url,
        redis_key_prefix=prefix,
        reconcile_grace_s=10,
    )
    worker = build_reconciler(settings)
    yield worker
    for key in worker.client.scan_iter(match=f"{prefix}*"):
        worker.client.delete(key)


def add_job(engine: Engine, **values: Any) -> str:
    with session_scope(engine) as session:
        tenant = repo.create_tenant(session, name=f"rec-{secrets.token_hex(4)}")
        job_id = new_id("job")
        row = {
            "id": job_id,
            "tenant_id": tenant.id,
            "status": "queued",
            "tier": "code",
            "tier_reasons": [],
            "plan": ["sim-codestral"],
            "priority": 6,
            "request": {"prompt": "hi"},
            "created_at": utcnow(),
            **values,
        }
        repo.insert_jobs(session, rows=[row])
    return job_id


def queued_ids(client: redis.Redis, prefix: str) -> list[str]:
    """Job ids of every message waiting on any tier queue under ``prefix``.

    An ``execute_job`` message carries one id, an ``execute_jobs`` (batch) message a list.
    """
    ids = []
    for key in client.scan_iter(match=f"{prefix}*"):
        if client.type(key) == b"list":
            for raw in client.lrange(key, 0, -1):
                body = json.loads(base64.b64decode(json.loads(raw)["body"]))
                carried = body[0][0]
                ids.extend(carried if isinstance(carried, list) else [carried])
    return sorted(ids)


def test_reconciler_recovers_lost_work_and_expires_overdue_jobs(reconciler: Reconciler) -> None:
    engine = get_engine(reconciler.settings.effective_database_url)
    prefix = reconciler.settings.redis_key_prefix
    past, long_ago = utcnow() - timedelta(seconds=1), utcnow() - timedelta(minutes=5)
    # Given a job past its deadline, a job whose worker died, a parked job now due,
    # and a queued job whose message was lost long ago
    overdue = add_job(engine, deadline_at=past)
    dead = add_job(engine, status="running", lease_owner="h:1:1", lease_expires_at=past)
    parked = add_job(engine, status="retrying", next_attempt_at=past)
    lost = add_job(engine, created_at=long_ago)
    client = reconciler.client
    # When it runs the first time (it cannot know what Redis held before it): everything
    # still waiting or dead is re-published, and the overdue job expired
    first = reconciler.run_once()
    assert first.redis_lost and first.expired == 1 and first.restored == 3
    assert queued_ids(client, prefix) == sorted([dead, parked, lost])
    with session_scope(engine) as session:
        job = session.get(Job, overdue)
        assert job is not None and job.status == "expired"
    # When it runs again with those messages still queued; Then it publishes nothing more
    second = reconciler.run_once()
    assert (second.redis_lost, second.republished) == (False, 0)
    # When Redis loses everything; Then the next pass sees it and publishes them again
    for key in client.scan_iter(match=f"{prefix}*"):
        if not key.endswith(b"reconciler:lock"):
            client.delete(key)
    third = reconciler.run_once()
    assert third.redis_lost and third.restored == 3
    assert queued_ids(client, prefix) == sorted([dead, parked, lost])


def test_only_one_reconciler_works_at_a_time(reconciler: Reconciler) -> None:
    other = Reconciler(reconciler.settings, reconciler.engine, reconciler.celery, reconciler.client)
    assert reconciler.run_once().skipped is None
    assert other.run_once().skipped == "another reconciler holds the lock"
