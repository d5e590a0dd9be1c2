"""A lone job's message cast from the mold is ``publish``'s own but for its ids (issue 24)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from celery import Celery
from kombu.messaging import Producer

from orchestrator.core.config import Settings
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.queues.app import PRIORITY_VALUE, QueuedJob, make_celery, publish
from orchestrator.queues.broker_transport import Command, collected
from orchestrator.queues.message_mold import MessageMold

pytestmark = pytest.mark.integration

TASK_IDS = {"id", "root_id", "correlation_id"}


def published(app: Celery, producer: Producer, jobs: list[QueuedJob]) -> list[Command]:
    with collected() as commands:
        publish(app, jobs, producer=producer)
    return commands


def opened(command: Command) -> tuple[str, Any, dict[str, Any]]:
    name, (key, payload) = command
    message = json.loads(payload)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return name, key, message


def test_a_cast_message_is_publishs_own_but_for_its_ids(redis_url: str) -> None:
    # Given the API's Celery app and producer on a key prefix
    settings = Settings(
        redis_url=redis_url, redis_key_prefix=f"sytest-mold-{secrets.token_hex(4)}:"
    )
    app = make_celery(settings)
    producer = app.amqp.Producer(app.connection_for_write())
    mold = MessageMold(app, producer)
    try:
        for tier in ALL_TIERS:
            for priority in PRIORITY_VALUE.values():
                jobs = [QueuedJob(f"job-{secrets.token_hex(6)}", tier, priority) for _ in range(2)]
                # When the same jobs are published and cast
                cast = mold.commands(jobs)
                assert cast is not None
                for theirs, ours in zip(published(app, producer, jobs), cast, strict=True):
                    name, key, expected = opened(theirs)
                    cast_name, cast_key, got = opened(ours)
                    # Then the command and list are the same, and the message too, but for
                    # a new task id (set where Celery sets it) and a new delivery tag
                    assert (cast_name, cast_key) == (name, key)
                    task_id = got["headers"]["id"]
                    assert task_id != expected["headers"]["id"]
                    assert {got["headers"]["root_id"], got["properties"]["correlation_id"]} == {
                        task_id
                    }
                    assert (
                        got["properties"]["delivery_tag"] != expected["properties"]["delivery_tag"]
                    )
                    for part in ("headers", "properties"):
                        for field in TASK_IDS | {"delivery_tag"}:
                            expected[part].pop(field, None)
                            got[part].pop(field, None)
                    assert got == expected
                # And two casts never share an id
                ids = {opened(c)[2]["headers"]["id"] for c in cast}
                assert len(ids) == len(jobs)
    finally:
        producer.release()


def test_jobs_that_wait_or_have_a_parent_are_not_cast(redis_url: str) -> None:
    # Given the mold
    app = make_celery(Settings(redis_url=redis_url))
    producer = app.amqp.Producer(app.connection_for_write())
    mold = MessageMold(app, producer)
    tier = ALL_TIERS[0]
    try:
        # Then a countdown, a parent or a root task leave the message to publish
        for job in (
            QueuedJob("a", tier, 0, countdown_s=5.0),
            QueuedJob("b", tier, 0, parent_task_id="p", root_task_id="r"),
            QueuedJob("c", tier, 0, root_task_id="r"),
        ):
            assert mold.commands([QueuedJob("lone", tier, 0), job]) is None
        assert mold.commands([QueuedJob("lone", tier, 0)]) is not None
    finally:
        producer.release()
