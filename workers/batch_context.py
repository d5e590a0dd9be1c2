"""What advancing a provider batch needs from its worker process, in one place.

``BatchContext`` holds the settings, catalog, engine and HTTP client, and the
few operations every step uses: a transaction, the hold (``take``, ``write``
fenced on it, ``let_go``), the countdown message, the batch adapter, and what
follows written answers (budgets settled, completion events published).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.config import Settings
from orchestrator.costs.budgets import Budgets
from orchestrator.services.provider_batch_driver import Due, queue_of
from orchestrator.store import budget_holds, provider_batch_lines, provider_batches
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, as_utc, utcnow
from orchestrator.store.provider_batch_lines import Line, Retry, lines_of
from orchestrator.store.provider_batch_models import ProviderBatch
from workers.providers.batch_base import BatchAdapter, Manifest
from workers.providers.batches import batch_adapter_for

log = logging.getLogger(__name__)
MANIFEST_LOOKBACK = timedelta(days=2)  # batches made this long before ours may still run
T = TypeVar("T")
Scheduler = Callable[[Due, float], None]
Announcer = Callable[[dict[str, str]], None]


class Lost(Exception):
    """The batch's hold lapsed and another task took it: this task stops writing."""


@dataclass
class BatchContext:
    """One worker process's means to advance provider batches."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    http: httpx.Client
    owner: str
    scheduler: Scheduler  # sends the advance task's countdown message
    budgets: Budgets | None = None
    announce: Announcer | None = None  # completion events: job id -> status

    @property
    def lease_s(self) -> float:
        return float(self.settings.job_lease_s)

    @property
    def hold_s(self) -> float:
        """How long a task holds a batch: longer than any one provider call may take."""
        return max(float(self.settings.job_lease_s), 2 * self.settings.provider_timeout_s)

    def tx(self, work: Callable[[Session], T]) -> T:
        with session_scope(self.engine) as session:
            return work(session)

    def take(self, batch_id: str) -> ProviderBatch | None:
        now, hold_s = utcnow(), self.hold_s
        return self.tx(
            lambda s: provider_batches.take(s, batch_id=batch_id, now=now, hold_s=hold_s)
        )

    def write(self, held: ProviderBatch, values: dict[str, Any]) -> None:
        """Write ``values`` if our hold is still the batch's, renewing it; else ``Lost``."""
        values = {"locked_until": utcnow() + timedelta(seconds=self.hold_s)} | values
        token = held.locked_until
        ok = self.tx(
            lambda s: provider_batches.advance(s, batch_id=held.id, values=values, held_until=token)
        )
        if not ok:
            raise Lost(held.id)
        for name, value in values.items():
            setattr(held, name, value)

    def write_alone(self, held: ProviderBatch, values: dict[str, Any]) -> bool:
        """``write`` only if no other batch of its provider is ``submitting`` (False:
        one is; see ``provider_batches.begin_alone``); ``Lost`` as ``write``."""
        values = {"locked_until": utcnow() + timedelta(seconds=self.hold_s)} | values
        token = held.locked_until
        done = self.tx(
            lambda s: provider_batches.begin_alone(
                s, batch_id=held.id, provider=held.provider, values=values, held_until=token
            )
        )
        if done is None:
            raise Lost(held.id)
        if done:
            for name, value in values.items():
                setattr(held, name, value)
        return done

    def let_go(self, held: ProviderBatch, due: datetime) -> None:
        self.write(held, {"locked_until": None, "next_poll_at": due})

    def schedule(self, held: ProviderBatch, delay_s: float) -> None:
        self.scheduler(Due(held.id, queue_of(self.catalog, held.deployment)), delay_s)

    def adapter(self, deployment: Deployment | None) -> BatchAdapter | None:
        """The deployment's batch adapter (OpenAI, Anthropic, Gemini wires), or None."""
        return batch_adapter_for(deployment, self.http, self.settings)

    def lines(self, held: ProviderBatch) -> list[Line]:
        """The batch's lines still waiting for an answer, in the order they were sent."""
        return self.tx(lambda s: lines_of(s, batch_id=held.id))

    def manifest(self, held: ProviderBatch, lines: Sequence[Line] | None = None) -> Manifest:
        """What the adapter needs to recognise the batch at its provider, and its results."""
        found = self.lines(held) if lines is None else lines
        since = held.created_at
        window = since - MANIFEST_LOOKBACK
        taken = self.tx(lambda s: provider_batches.recorded_since(s, since=window))
        return Manifest(
            tag=held.id,
            sent=held.lines,
            custom_ids=tuple(line.custom_id for line in found),
            since=as_utc(since),
            taken=frozenset(taken - {held.provider_batch_id or ""}),
        )

    def send_back(
        self, held: ProviderBatch, final: frozenset[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """The batch's unanswered lines: (back to wait for another provider batch,
        released to sync). ``final``: custom ids whose failure will not go away;
        None: none may wait (the provider refused the whole batch)."""
        retry = None
        if final is not None:
            before = utcnow() + timedelta(seconds=self.settings.provider_batch_retry_min_s)
            retry = Retry(self.settings.provider_batch_max_tries, before, final)
        return self.tx(
            lambda s: provider_batch_lines.send_back(s, batch_id=held.id, now=utcnow(), retry=retry)
        )

    def after_answers(self, job_ids: Sequence[str], answered: Sequence[str]) -> None:
        """Settle the budgets of billed jobs, then wake whoever waits for the answered."""
        if self.budgets is not None and job_ids:
            try:
                ids = list(job_ids)
                settled = self.tx(lambda s: budget_holds.settle(s, Job.id.in_(ids)))
                self.budgets.apply(settled)
            except (redis.RedisError, SQLAlchemyError) as exc:
                log.warning("budgets of %d jobs not settled (%s); they expire", len(job_ids), exc)
        if self.announce is not None and answered:
            try:
                self.announce(dict.fromkeys(answered, "succeeded"))
            except redis.RedisError as exc:
                log.warning("completion events not sent (%s); waiters poll", exc)
