"""The Celery app factory and ``publish()``; task bodies live in ``workers``.

Messages carry the job id and nothing else: prompts, images and keys stay in the
database (Flower shows task arguments to whoever can open it). Results are not
kept in Celery (``task_ignore_result``); Postgres holds them.

Redis priorities are inverted (0 is served first) and folded into the steps
below, so interactive work (0) overtakes batch work (6) on the same queue.

Delivery (see RELIABILITY.md): messages are acknowledged after the task ran
(``acks_late``); a worker that closes its channel cleanly (a warm shutdown, the
broker reachable) gives back those it holds. kombu's Redis ack emulation, which would
also keep each delivered message in Redis to give it back after the visibility
timeout, is off by default (``broker_ack_emulation``): it cost two Redis
transactions a message (about 0.3 ms of a worker's CPU), and the reconciler, not
the broker, recovers the messages of a killed worker, long before any visibility
timeout. The database lease makes any redelivery harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer
from kombu.utils.uuid import uuid

from orchestrator.core.config import Lane, Settings
from orchestrator.core.schemas import Priority
from orchestrator.core.tiers import ALL_TIERS, Tier
from orchestrator.queues import broker_transport

EXECUTE_JOB = "switchyard.execute_job"
EXECUTE_JOBS = "switchyard.execute_jobs"  # a batch message: several job ids
JOBS_HEADER = "switchyard_jobs"  # how many jobs a message carries (orchestrator.queues.depth)
PRIORITY_STEPS = [0, 3, 6, 9]
PRIORITY_VALUE: dict[Priority, int] = {Priority.INTERACTIVE: 0, Priority.BATCH: 6}


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "visibility_timeout": settings.broker_visibility_timeout_s,
        "queue_order_strategy": "priority",
        "priority_steps": PRIORITY_STEPS,
        "ack_emulation": settings.broker_ack_emulation,
    }
    if settings.redis_key_prefix:
        options["global_keyprefix"] = settings.redis_key_prefix
    if settings.worker_lane is Lane.INTERACTIVE:  # the steps it fetches (broker_transport)
        options["consume_priority_steps"] = [PRIORITY_VALUE[Priority.INTERACTIVE]]
    return options


def make_celery(settings: Settings) -> Celery:
    """A Celery app wired to the broker, with one queue per tier."""
    app = Celery("switchyard", broker=settings.effective_redis_url, set_as_current=False)
    app.conf.update(
        broker_transport=broker_transport.NAME,  # kombu's Redis transport, one client a channel
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message per thread in hand: a worker that dies strands no more than
        # that (they wait for the reconciler), and calls of seconds need no more.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=broker_transport_options(settings),
        task_queues=[
            Queue(t.queue, Exchange(t.queue, "direct"), routing_key=t.queue) for t in ALL_TIERS
        ],
        task_default_queue=Tier.FAST.queue,
        worker_hijack_root_logger=False,
        worker_send_task_events=settings.worker_task_events,  # Flower turns them on
        task_send_sent_event=False,
    )
    return app


@dataclass(frozen=True)
class QueuedJob:
    """What goes on the wire for one job: its id, and where and how urgently it runs."""

    job_id: str
    tier: Tier
    priority: int
    countdown_s: float = 0.0
    # Celery task ids that link this message to others in Flower (a pipeline's steps)
    parent_task_id: str | None = None
    root_task_id: str | None = None


PUBLISH_BATCH = 1000


def publish(
    app: Celery, jobs: Iterable[QueuedJob], *, chunk: int = 1, producer: Producer | None = None
) -> int:
    """Publish ``jobs`` over one pooled producer (or ``producer``); returns the number sent.

    A job gets an ``execute_job`` message of its own, except that with ``chunk``
    above 1 batch-priority jobs due now go up to ``chunk`` to an ``execute_jobs``
    message (same tier and priority): the worker fetches and acknowledges them
    once and runs them side by side. Interactive jobs, countdowns and pipeline
    steps always travel alone.

    Each message is Celery's own task message (protocol 2, built by
    ``app.amqp.as_task_v2``), published by kombu straight onto the tier's list
    (the anonymous exchange, as Celery itself does for a direct queue) and
    pipelined with kombu's ``Producer.batch``: one Redis round trip per
    ``PUBLISH_BATCH`` messages. This skips only ``send_task``'s per-call routing
    and signal work, which cost more than the rest together (BENCHMARKS.md,
    dispatch). The queues are declared once by ``declare_queues``.
    """
    sent = 0
    waiting: dict[tuple[Tier, int], list[str]] = {}
    with app.producer_or_acquire(producer) as producer, producer.batch(max_size=PUBLISH_BATCH):

        def send(job: QueuedJob, job_ids: list[str] | None = None) -> None:
            args = [job_ids] if job_ids else [job.job_id]
            message = app.amqp.as_task_v2(
                uuid(),
                EXECUTE_JOBS if job_ids else EXECUTE_JOB,
                args=args,
                kwargs={},
                # what Celery's saferepr would write for a few ids, at a fraction of
                # its cost (a third of as_task_v2's CPU)
                argsrepr=repr(args),
                kwargsrepr="{}",
                countdown=job.countdown_s or None,
                ignore_result=True,
                root_id=job.root_task_id,
                parent_id=job.parent_task_id,
            )
            producer.publish(
                message.body,
                exchange="",
                routing_key=job.tier.queue,
                headers={**message.headers, JOBS_HEADER: len(job_ids) if job_ids else 1},
                priority=job.priority,
                serializer="json",
                declare=[],
                retry=True,
                **message.properties,
            )

        for job in jobs:
            sent += 1
            if chunk <= 1 or not _travels_in_chunks(job):
                send(job)
                continue
            ids = waiting.setdefault((job.tier, job.priority), [])
            ids.append(job.job_id)
            if len(ids) >= chunk:
                send(job, ids)
                waiting.pop((job.tier, job.priority))
        for (tier, priority), ids in waiting.items():
            first = QueuedJob(ids[0], tier, priority)
            send(first, ids if len(ids) > 1 else None)
    return sent


def _travels_in_chunks(job: QueuedJob) -> bool:
    return (
        job.priority >= PRIORITY_VALUE[Priority.BATCH]
        and not job.countdown_s
        and job.parent_task_id is None
        and job.root_task_id is None
    )


def declare_queues(app: Celery) -> None:
    """(Re)create every tier queue and its binding.

    A Redis that restarted empty has none, and kombu silently drops a message
    published to an exchange without a binding.
    """
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).declare()
