"""Celery's message for a job that travels alone, cast from one ``publish`` built.

Building a task message through Celery and kombu (``app.amqp.as_task_v2``, then
``Producer.publish`` and the Redis channel's ``_put``) took about 80 us of CPU warm
for one interactive job, two to three times that on the API's live path, for a
message in which only the job's id and three fresh ids differ from the last one
(issue 24). ``MessageMold`` lets ``publish`` build the message of one stand-in job per
tier and priority, through the same producer and the same transport, keeps the
Redis command it would send (``broker_transport.collected``), and for each new job
copies it with:

    the body's argument        ``[job_id]`` (the body's kwargs and embed unchanged)
    the task id                a new ``uuid()``, as ``headers.id``, ``headers.root_id``
                               and ``properties.correlation_id``, as Celery sets them
                               for a task that has no parent
    ``headers.argsrepr``       ``repr([job_id])``, as ``publish`` writes it
    ``properties.delivery_tag``  a new ``uuid()``, as kombu's channel sets it

Everything else (task name, origin, priority, the list it goes on under the
transport's key prefix, the job count header) is the stand-in's, so the message
is ``publish``'s own but for those values; a test compares the two. Only jobs
that go now and alone are cast (no countdown, no parent or root task: what an
interactive job is); for any other ``commands`` returns ``None`` and the caller
publishes as before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.messaging import Producer
from kombu.utils.uuid import uuid

from orchestrator.core.tiers import Tier
from orchestrator.queues.app import QueuedJob, publish
from orchestrator.queues.broker_transport import Command, collected

STAND_IN = "switchyard-message-mold"  # the stand-in job's id; never sent


class MessageMold:
    """``publish``'s Redis command for lone jobs, cast per (tier, priority)."""

    def __init__(self, app: Celery, producer: Producer) -> None:
        self.app = app
        self.producer = producer
        self._molds: dict[tuple[Tier, int], tuple[str, Any, dict[str, Any], list[Any]]] = {}

    def commands(self, jobs: Sequence[QueuedJob]) -> list[Command] | None:
        """The command each job's message is sent by, in order; ``None`` unless all go
        now and alone."""
        if not all(_castable(job) for job in jobs):
            return None
        return [self._cast(job) for job in jobs]

    def _cast(self, job: QueuedJob) -> Command:
        name, key, mold, rest = self._mold(job.tier, job.priority)
        task_id = uuid()
        args = [job.job_id]
        body = json.dumps([args, *rest]).encode()
        message = {
            **mold,
            "body": base64.b64encode(body).decode(),
            "headers": {
                **mold["headers"],
                "id": task_id,
                "root_id": task_id,
                "argsrepr": repr(args),
            },
            "properties": {
                **mold["properties"],
                "correlation_id": task_id,
                "delivery_tag": uuid(),
            },
        }
        return name, (key, json.dumps(message))

    def _mold(self, tier: Tier, priority: int) -> tuple[str, Any, dict[str, Any], list[Any]]:
        found = self._molds.get((tier, priority))
        if found is None:
            with collected() as commands:
                publish(self.app, [QueuedJob(STAND_IN, tier, priority)], producer=self.producer)
            ((name, (key, payload)),) = commands  # one LPUSH: the list, the message
            mold = json.loads(payload)
            stand_in, *rest = json.loads(base64.b64decode(mold["body"]))
            if stand_in != [STAND_IN] or mold["properties"].get("body_encoding") != "base64":
                raise RuntimeError(f"unexpected message layout from publish: {mold!r}")
            found = self._molds[(tier, priority)] = (name, key, mold, rest)
        return found


def _castable(job: QueuedJob) -> bool:
    return not job.countdown_s and job.parent_task_id is None and job.root_task_id is None
