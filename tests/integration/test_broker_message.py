"""The broker carries job ids only: read the raw message Celery left in Redis."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
import redis
from celery.utils.saferepr import saferepr
from kombu import Consumer
from kombu.message import Message
from sqlalchemy import select

from orchestrator.admission.dispatch import Dispatcher
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Lane, Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.queues.app import make_celery
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Job

pytestmark = pytest.mark.integration

SECRET_PROMPT = "Who holds account 4111-1111-1111-1111? Ada Lovelace, say hi"


def raw_messages(client: redis.Redis, prefix: str) -> dict[bytes, list[bytes]]:
    """Every list under the prefix (queues and their priority sub-lists) and its messages."""
    lists: dict[bytes, list[bytes]] = {}
    for key in client.scan_iter(match=f"{prefix}*"):
        if client.type(key) == b"list":
            lists[key] = client.lrange(key, 0, -1)
    return lists


def test_task_message_holds_job_id_and_no_prompt(database_url: str, redis_url: str) -> None:
    # Given a dispatcher on a key prefix that no worker consumes
    prefix = f"sytest-raw-{secrets.token_hex(4)}:"
    settings = Settings(database_url=database_url, redis_url=redis_url, redis_key_prefix=prefix)
    engine = get_engine(database_url)
    with session_scope(engine) as session:
        tenant = repo.create_tenant(session, name=f"raw-{prefix}")
        tenant_id = tenant.id
    dispatcher = Dispatcher(settings, load_catalog(settings), engine, make_celery(settings))

    # When a job with a sensitive prompt and a batch are submitted
    job_id = dispatcher.submit_job(
        tenant_id=tenant_id, request=JobRequest(prompt=SECRET_PROMPT, tier=Tier.FAST)
    )
    dispatcher.submit_batch(
        tenant_id=tenant_id, requests=[JobRequest(prompt=SECRET_PROMPT, tier=Tier.FAST)] * 3
    )

    # Then the raw messages in Redis name the job and carry nothing of the prompt
    client = redis.Redis.from_url(redis_url)
    try:
        lists = raw_messages(client, prefix)
        raw = [m for messages in lists.values() for m in messages]
        # one message for the job, one for the batch's three (a batch message carries ids)
        assert len(raw) == 2
        # and every message sits on the fast tier's queue (or its priority sub-lists), once
        assert all(key.startswith(f"{prefix}fast".encode()) for key in lists), list(lists)
        carried: list[str] = []
        for message in raw:
            assert b"Ada Lovelace" not in message and b"4111" not in message
            envelope = json.loads(message)
            body = base64.b64decode(envelope["body"])
            assert b"Lovelace" not in body and b"4111" not in body
            args, kwargs, _ = json.loads(body)
            assert kwargs == {}
            # and what Flower shows of it is what Celery's own saferepr would write
            headers = envelope["headers"]
            assert (headers["argsrepr"], headers["kwargsrepr"]) == (saferepr(args), "{}")
            assert len(args) == 1
            ids = args[0] if isinstance(args[0], list) else [args[0]]
            assert all(isinstance(i, str) and i.startswith("job_") for i in ids), ids
            carried.extend(ids)
        assert job_id in carried and len(carried) == 4
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def fetched(settings: Settings, *, most: int = 4) -> list[Any]:
    """The task arguments a worker's consumer with these settings gets from the fast queue
    (acknowledged, so they are gone), until a second passes with nothing more."""
    app = make_celery(settings)
    got: list[Any] = []
    with app.connection_for_read() as conn, conn.channel() as channel:
        queue = app.amqp.queues[Tier.FAST.queue]

        def take(body: Any, message: Message) -> None:
            got.append(body[0])  # Celery's message body: [args, kwargs, embed]
            message.ack()

        with Consumer(channel, [queue], callbacks=[take], accept=["json"]):
            while len(got) < most:
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    break
    return got


def test_an_interactive_lane_worker_takes_interactive_messages_only(
    database_url: str, redis_url: str
) -> None:
    # Given an interactive job and a batch of three on the fast tier's queue
    prefix = f"sytest-lane-{secrets.token_hex(4)}:"
    settings = Settings(database_url=database_url, redis_url=redis_url, redis_key_prefix=prefix)
    engine = get_engine(database_url)
    with session_scope(engine) as session:
        tenant_id = repo.create_tenant(session, name=f"lane-{prefix}").id
    dispatcher = Dispatcher(settings, load_catalog(settings), engine, make_celery(settings))
    batch_id = dispatcher.submit_batch(
        tenant_id=tenant_id, requests=[JobRequest(prompt="batch", tier=Tier.FAST)] * 3
    )
    job_id = dispatcher.submit_job(tenant_id=tenant_id, request=JobRequest(prompt="now"))
    # When a worker on the interactive lane fetches all it can
    lane = fetched(settings.model_copy(update={"worker_lane": Lane.INTERACTIVE}))
    # Then it got the interactive job's message, and the batch's stayed on the queue
    assert lane == [[job_id]]
    # And a worker on every lane gets the batch's message (its three job ids)
    rest = fetched(settings)
    with session_scope(engine) as session:
        batch_jobs = {j.id for j in session.scalars(select(Job).where(Job.batch_id == batch_id))}
    assert len(rest) == 1 and set(rest[0][0]) == batch_jobs
