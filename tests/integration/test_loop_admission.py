"""Admission on the API's event loop (issue 24): the same row and message as in a thread,
the row before its message, and a thread whenever admission would have to read."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from openai import OpenAI
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from orchestrator.admission.dispatch import Dispatcher
from orchestrator.admission.loop_writes import LoopWrites
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.queues.app import make_celery
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Job
from tests.integration.conftest import Cluster
from tests.integration.test_broker_message import raw_messages

pytestmark = pytest.mark.integration

# what differs between any two messages or rows: ids, and when they were made
MESSAGE_IDS = {"id", "root_id", "correlation_id", "delivery_tag", "argsrepr", "eta"}
ROW_IDS = {"id", "created_at", "deadline_at", "updated_at"}


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    prefix = f"sytest-loop-{secrets.token_hex(4)}:"  # no worker consumes these queues
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def dispatcher_for(database_url: str, redis_url: str, prefix: str) -> tuple[Dispatcher, Engine]:
    settings = Settings(database_url=database_url, redis_url=redis_url, redis_key_prefix=prefix)
    engine = get_engine(database_url)
    return Dispatcher(settings, load_catalog(settings), engine, make_celery(settings)), engine


def tenant_for(engine: Engine, name: str, **columns: Any) -> str:
    """A new tenant's id; ``columns`` set on its row (a budget, say)."""
    with session_scope(engine) as session:
        tenant = repo.create_tenant(session, name=name)
        for column, value in columns.items():
            setattr(tenant, column, value)
        return tenant.id


def messages_under(redis_url: str, prefix: str) -> dict[bytes, list[bytes]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return raw_messages(client, prefix)
    finally:
        client.close()


def admitted(on: str) -> float:
    value = REGISTRY.get_sample_value("switchyard_interactive_admissions_total", {"on": on})
    return value or 0.0


def submit_on_loop(dispatcher: Dispatcher, redis_url: str, **submit: Any) -> str:
    """``asubmit_job`` as the API runs it: on an event loop, with the loop's writes open."""

    async def run(writes: LoopWrites) -> list[str]:
        return [await dispatcher.asubmit_job(**submit)]

    return on_loop(dispatcher, redis_url, run)[0]


def on_loop(
    dispatcher: Dispatcher,
    redis_url: str,
    work: Callable[[LoopWrites], Awaitable[list[str]]],
    *,
    application_name: str = "switchyard-api-loop",
) -> list[str]:
    """``work`` on an event loop, with the dispatcher's loop writes open as in the API."""

    async def run() -> list[str]:
        aredis = aioredis.Redis.from_url(redis_url)
        url = dispatcher.settings.effective_database_url
        writes = LoopWrites(url, dispatcher.celery, aredis, application_name=application_name)
        dispatcher.loop_writes = writes
        await writes.open()
        try:
            return await work(writes)
        finally:
            await writes.close()
            await aredis.aclose()
            dispatcher.loop_writes = None

    return asyncio.run(run())


def envelope(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def without(values: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in keys}


def test_a_job_admitted_on_the_loop_is_the_row_and_message_a_thread_would_write(
    database_url: str, redis_url: str, prefix: str
) -> None:
    # Given a tenant, and the same request admitted in a thread and on the event loop
    dispatcher, engine = dispatcher_for(database_url, redis_url, prefix)
    tenant_id = tenant_for(engine, f"loop-{prefix}")
    request = JobRequest(prompt="What is six times seven?", tier=Tier.FAST)
    on_loop_before = admitted("event_loop")
    threaded = dispatcher.submit_job(tenant_id=tenant_id, request=request)
    looped = submit_on_loop(dispatcher, redis_url, tenant_id=tenant_id, request=request)
    # Then the loop admitted it itself
    assert admitted("event_loop") == on_loop_before + 1
    # And both rows are alike but for ids and times
    with session_scope(engine) as session:
        rows = [session.get(Job, job_id) for job_id in (threaded, looped)]
    columns = [c.name for c in Job.__table__.columns]
    alike = [without({c: getattr(r, c) for c in columns}, ROW_IDS) for r in rows if r]
    assert len(alike) == 2 and alike[0] == alike[1] and alike[0]["status"] == "queued"
    # And both messages sit on the same list, alike but for ids: the job's id their argument
    lists = messages_under(redis_url, prefix)
    assert len(lists) == 1, list(lists)
    first, second = (envelope(m) for m in reversed(next(iter(lists.values()))))
    assert [first["body"][0], second["body"][0]] == [[threaded], [looped]]
    assert without(first["headers"], MESSAGE_IDS) == without(second["headers"], MESSAGE_IDS)
    assert second["headers"]["id"] != first["headers"]["id"]
    props = [without(m["properties"], MESSAGE_IDS) for m in (first, second)]
    assert props[0] == props[1]
    assert first["body"][1:] == second["body"][1:]
    assert (
        set(first)
        == set(second)
        == {"body", "content-encoding", "content-type", "headers", "properties"}
    )


def test_a_row_the_database_refuses_is_never_published(
    database_url: str, redis_url: str, prefix: str
) -> None:
    # Given a request for a tenant the database does not have (its row breaks a foreign key)
    dispatcher, _ = dispatcher_for(database_url, redis_url, prefix)
    request = JobRequest(prompt="hello", tier=Tier.FAST)
    # When it is admitted on the loop, Then the database's refusal comes out as SQLAlchemy's
    with pytest.raises(IntegrityError):
        submit_on_loop(dispatcher, redis_url, tenant_id="ten_missing", request=request)
    # And no message was sent
    assert messages_under(redis_url, prefix) == {}


def test_admission_that_must_read_goes_to_a_thread(
    database_url: str, redis_url: str, prefix: str
) -> None:
    # Given a tenant, and a request whose session must be looked up in the database
    dispatcher, engine = dispatcher_for(database_url, redis_url, prefix)
    tenant_id = tenant_for(engine, f"loop-read-{prefix}")
    request = JobRequest(prompt="and then?", tier=Tier.FAST, session_id="sess-1")
    loop_before, thread_before = admitted("event_loop"), admitted("thread")
    # When it is admitted from the event loop
    job_id = submit_on_loop(dispatcher, redis_url, tenant_id=tenant_id, request=request)
    # Then a thread admitted it, and it is queued as any other
    assert (admitted("event_loop"), admitted("thread")) == (loop_before, thread_before + 1)
    with session_scope(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "queued"
    # And a request of a tenant whose settings were read a moment ago stays on the loop
    plain = JobRequest(prompt="hi", tier=Tier.FAST)
    submit_on_loop(dispatcher, redis_url, tenant_id=tenant_id, request=plain)
    assert admitted("event_loop") == loop_before + 1


def loop_admissions(cluster: Cluster) -> float:
    text = httpx.get(f"{cluster.api_url}/metrics", timeout=10).text
    line = 'switchyard_interactive_admissions_total{on="event_loop"} '
    found = [float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)]
    return found[0] if found else 0.0


def test_a_chat_completion_through_the_api_is_admitted_on_its_event_loop(
    cluster: Cluster,
) -> None:
    # Given the running API and the official SDK
    before = loop_admissions(cluster)
    with OpenAI(base_url=f"{cluster.api_url}/v1", api_key=cluster.api_key) as sdk:
        # When five small chat completions are made, one after the other
        for n in range(5):
            completion = sdk.chat.completions.create(
                model="tier:fast", messages=[{"role": "user", "content": f"Say hi ({n})"}]
            )
            # Then each is answered
            assert completion.choices[0].message.content
    # And the API admitted them on its event loop, but those that found a cache of the
    # tenant's settings stale (its first, at least), which a thread admitted and refreshed
    assert loop_admissions(cluster) >= before + 3


def test_a_tenant_with_a_budget_is_admitted_in_a_thread_with_its_reservation(
    database_url: str, redis_url: str, prefix: str
) -> None:
    # Given a tenant with a daily budget
    dispatcher, engine = dispatcher_for(database_url, redis_url, prefix)
    tenant_id = tenant_for(engine, f"loop-budget-{prefix}", budget_daily_micro_usd=5_000_000)
    loop_before, thread_before = admitted("event_loop"), admitted("thread")
    # When a small request of it is admitted from the event loop
    request = JobRequest(prompt="hi", tier=Tier.FAST)
    job_id = submit_on_loop(dispatcher, redis_url, tenant_id=tenant_id, request=request)
    # Then a thread admitted it, and its row holds its share of the budget
    assert (admitted("event_loop"), admitted("thread")) == (loop_before, thread_before + 1)
    with session_scope(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.budget_held_micro_usd or 0) > 0


def test_after_a_database_restart_admission_on_the_loop_fails_no_request(
    database_url: str, redis_url: str, prefix: str
) -> None:
    # Given the loop's pool holding several connections, all of which the server then drops
    # (as a restart does); only this test's own connections, found by their name
    dispatcher, engine = dispatcher_for(database_url, redis_url, prefix)
    tenant_id = tenant_for(engine, f"loop-restart-{prefix}")
    name = f"sytest-{prefix}"
    request = JobRequest(prompt="hi", tier=Tier.FAST)

    async def submit() -> str:
        return await dispatcher.asubmit_job(tenant_id=tenant_id, request=request)

    async def work(writes: LoopWrites) -> list[str]:
        warm = await submit()  # the tenant's caches, read in a thread
        first = [warm, *await asyncio.gather(*(submit() for _ in range(6)))]
        with session_scope(engine) as session:
            dropped = session.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        assert dropped >= 2, dropped
        # When requests keep coming, one after the other
        later = [
            await dispatcher.asubmit_job(tenant_id=tenant_id, request=request) for _ in range(6)
        ]
        return [*first, *later]

    ids = on_loop(dispatcher, redis_url, work, application_name=name)
    # Then every one was admitted, each once
    with session_scope(engine) as session:
        found = session.scalars(select(Job.id).where(Job.id.in_(ids))).all()
    assert len(ids) == 13 and sorted(found) == sorted(ids)
