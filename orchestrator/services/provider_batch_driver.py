"""The provider batch path's periodic part (issue 26): gather lines, send advance tasks.

The reconciler calls ``drive`` on every pass (under its lock, so one runs):

    gather      each deployment's waiting lines -> new provider batches (``prepared``),
                up to its catalog ``batch.max_lines`` and the input tokens its
                provider still lets queue for the model (``batch.max_queued_tokens``,
                ``QueuedTokens``), once a file is full or its oldest line waited
                ``provider_batch_gather_s``; an advance task is sent for each at once
    (off)       with ``provider_batch_enabled`` false, waiting lines are not gathered
                but sent back to the synchronous path (``release``: due now)
    withdraw    lines whose job no longer waits for them (its time to run synchronously
                came ``provider_batch_sync_margin_s`` before its deadline, it was
                cancelled, it ended): taken out of their provider batch in the store
    cancel      submitted provider batches left with no line that wants an answer:
                their advance task is sent now, and cancels them at the provider
    re-send     provider batches whose next step has been due for ``reconcile_grace_s``
                and that no task holds: their countdown message died with a worker
                (or a publish failed); an advance task is sent again

The advance task (``workers.batch_advance``) polls a submitted batch by sending
itself a countdown message; ``next_poll_at`` in Postgres says when it is due, so
a message lost with a worker is re-sent from there. Marking a re-sent batch
(``next_poll_at = now``) and publishing happen in one transaction that commits
only once the publish worked. A duplicated message is harmless: ``take`` lets
one task hold a batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy.orm import Session

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Priority
from orchestrator.core.tiers import Tier
from orchestrator.queues.app import PRIORITY_VALUE
from orchestrator.store import provider_batch_lines, provider_batches

ADVANCE_PROVIDER_BATCH = "switchyard.advance_provider_batch"
MAX_GATHERED_PER_PASS = 50
MAX_RELEASED_PER_PASS = 5000


@dataclass(frozen=True)
class Due:
    """A provider batch whose advance task is to be sent, and the queue it goes to."""

    batch_id: str
    tier: Tier


def queue_of(catalog: Catalog, deployment: str) -> Tier:
    """Where a deployment's advance tasks run: its first tier's queue (workers there
    call that deployment anyway)."""
    found = catalog.find(deployment)
    return found.tiers[0] if found is not None else Tier.FAST


def send_advance(app: Celery, due: Due, *, countdown_s: float = 0.0) -> None:
    """One advance task message; it carries the provider batch's id and nothing else."""
    app.send_task(
        ADVANCE_PROVIDER_BATCH,
        args=[due.batch_id],
        queue=due.tier.queue,
        routing_key=due.tier.queue,
        priority=PRIORITY_VALUE[Priority.BATCH],
        countdown=countdown_s or None,
        ignore_result=True,
    )


def gather_ready(
    session: Session, catalog: Catalog, settings: Settings, now: datetime
) -> list[Due]:
    """New provider batches of every deployment whose waiting lines are ready, within
    the tokens each provider lets queue for the model (``QueuedTokens``)."""
    made: list[Due] = []
    queued = QueuedTokens.of(session, catalog)
    for name in provider_batches.waiting_deployments(session):
        deployment = catalog.find(name)
        if deployment is None or deployment.batch is None:
            continue  # its lines run synchronously when their time comes
        while len(made) < MAX_GATHERED_PER_PASS:
            batch = provider_batches.gather(
                session,
                deployment=name,
                provider=deployment.provider,
                now=now,
                gather_s=settings.provider_batch_gather_s,
                max_lines=deployment.batch.max_lines,
                room_tokens=queued.room(deployment),
            )
            if batch is None:
                break
            queued.add(deployment, batch.input_tokens)
            made.append(Due(batch.id, deployment.tiers[0]))
            if batch.lines < deployment.batch.max_lines:
                break  # not full: the rest (none, or over the limit) waits for a later pass
    return made


@dataclass
class QueuedTokens:
    """Input tokens queued in provider batches, per provider model, against its limit.

    Providers limit the tokens queued in batches per model (OpenAI's "batch queue
    limit"), not per deployment: deployments of one provider and model share it,
    and the smallest ``batch.max_queued_tokens`` among them is the limit. The count
    is the sum over the provider batches the provider holds (``provider_batches.
    queued_tokens``), read from Postgres by the one gatherer (the reconciler, under
    its lock) in the transaction that adds the new batches: it is exact, survives
    a Redis loss, and is given back when a batch ends with nothing to release.
    Lines over the limit wait; one whose deadline does not allow waiting runs
    synchronously when its time comes (``withdraw_stale``).
    """

    used: dict[tuple[str, str], int]
    limits: dict[tuple[str, str], int]

    @classmethod
    def of(cls, session: Session, catalog: Catalog) -> QueuedTokens:
        used: dict[tuple[str, str], int] = {}
        for name, tokens in provider_batches.queued_tokens(session).items():
            found = catalog.find(name)
            if found is not None:
                key = (found.provider, found.model)
                used[key] = used.get(key, 0) + tokens
        limits: dict[tuple[str, str], int] = {}
        for dep in catalog.deployments:
            if dep.batch is not None and dep.batch.max_queued_tokens is not None:
                key, limit = (dep.provider, dep.model), dep.batch.max_queued_tokens
                limits[key] = min(limits.get(key, limit), limit)
        return cls(used, limits)

    def room(self, deployment: Deployment) -> int | None:
        """Tokens the deployment's model may still queue (None: no limit)."""
        key = (deployment.provider, deployment.model)
        if key not in self.limits:
            return None
        return max(0, self.limits[key] - self.used.get(key, 0))

    def add(self, deployment: Deployment, tokens: int) -> None:
        key = (deployment.provider, deployment.model)
        self.used[key] = self.used.get(key, 0) + tokens


def withdraw_stale(session: Session, now: datetime) -> int:
    """Withdraw the lines whose jobs no longer wait for them (see the module's docstring)."""
    stale = provider_batch_lines.stale(session, now=now, limit=MAX_RELEASED_PER_PASS)
    provider_batch_lines.withdraw(session, job_ids=stale)
    return len(stale)


def cancelling(session: Session, catalog: Catalog, now: datetime) -> list[Due]:
    """Submitted batches nobody wants an answer from: due now, so their task cancels them."""
    found = provider_batches.to_cancel(session, now=now)
    for batch_id, _ in found:
        provider_batches.advance(session, batch_id=batch_id, values={"next_poll_at": now})
    return [Due(batch_id, queue_of(catalog, name)) for batch_id, name in found]


def overdue(session: Session, catalog: Catalog, settings: Settings, now: datetime) -> list[Due]:
    """Batches due for ``reconcile_grace_s`` that no task holds, marked as sent now."""
    since = now - timedelta(seconds=settings.reconcile_grace_s)
    found = provider_batches.due(session, now=since)
    for batch_id, _ in found:
        provider_batches.advance(session, batch_id=batch_id, values={"next_poll_at": now})
    return [Due(batch_id, queue_of(catalog, name)) for batch_id, name in found]


def drive(
    session: Session, app: Celery, catalog: Callable[[], Catalog], settings: Settings, now: datetime
) -> int:
    """Gather and re-send (see the module's docstring); returns the tasks sent.

    Call it inside a transaction: it commits the new batches and marks only if
    every publish worked (else they are gathered and marked again next pass).
    ``catalog`` is loaded only when there is something to do.
    """
    if not provider_batches.anything_to_do(session):
        return 0
    withdraw_stale(session, now)
    if not settings.provider_batch_enabled:  # turned off: waiting jobs run now
        waiting = provider_batches.waiting_lines(session, limit=MAX_RELEASED_PER_PASS)
        if waiting:
            provider_batch_lines.release(session, job_ids=waiting, now=now)
        sending: list[Due] = []
    else:
        sending = gather_ready(session, catalog(), settings, now)
    sending += cancelling(session, catalog(), now)
    sending += overdue(session, catalog(), settings, now)
    for due in sending:
        send_advance(app, due)
    return len(sending)
