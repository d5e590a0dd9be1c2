"""The reconciler: Postgres is the source of truth, so lost work is re-published from it.

Run one per cluster (``switchyard reconciler``; ``switchyard up`` starts one).
Every ``reconcile_interval_s`` it:

1. expires jobs past their deadline that no live worker holds, and settles their
   budgets (what they spent counts; what they held is given back);
2. notices that Redis lost its data (a marker key is gone: a restart without
   persistence, a failover, a flush), declares the tier queues again and
   re-publishes every job still waiting or whose lease is dead;
3. re-publishes jobs whose lease expired (their worker died), and publishes the
   deferred jobs (handed back by a worker to wait for a retry, a rate-limit slot
   or a breaker) shortly before they are due, with a countdown: workers hold no
   long-lived wake-ups that would die with them;
4. for each tier whose queue is empty, re-publishes the waiting jobs published
   and due ``reconcile_grace_s`` ago that no worker claimed: with nothing left in
   the queue, their message is lost (prefetched or counted down by a worker that
   was killed, or a publish that failed after the commit).
   While a queue has a backlog this waits: a late job's message is most likely
   in it, and duplicates would only make the backlog longer;
5. gathers the jobs waiting for a provider batch into provider batches, and sends
   the advance task of each new one and of each whose countdown message was lost
   (``orchestrator.services.provider_batch_driver``).

Re-publishing is always safe: a worker that receives a message for a job that
is running elsewhere, or final, does nothing. Several reconcilers may run; a
Redis lock lets one work at a time.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import redis
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.costs.budgets import Budgets
from orchestrator.jobs.control import messages
from orchestrator.queues.app import declare_queues, publish
from orchestrator.queues.depth import read_depths
from orchestrator.services import provider_batch_driver
from orchestrator.store import budget_holds, lifecycle
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, utcnow

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What one pass did."""

    expired: int = 0
    restored: int = 0  # re-published because Redis lost everything
    stale: int = 0
    woken: int = 0  # deferred jobs published as they come due
    orphaned: int = 0
    provider_batches: int = 0  # advance tasks sent (orchestrator.services.provider_batch_driver)
    redis_lost: bool = False
    skipped: str | None = None  # why the publishing part did not run

    @property
    def republished(self) -> int:
        return self.restored + self.stale + self.orphaned  # woken jobs were not lost

    @property
    def eventful(self) -> bool:
        """Worth a log line."""
        return bool(self.expired or self.republished or self.redis_lost or self.provider_batches)


@dataclass
class Reconciler:
    """Finds jobs whose message, lease or deadline needs attention, and acts on them."""

    settings: Settings
    engine: Engine
    celery: Celery
    client: redis.Redis
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def _prefix(self) -> str:
        return f"{self.settings.redis_key_prefix}switchyard:reconciler:"

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings)

    @cached_property
    def budgets(self) -> Budgets:
        return Budgets(self.client, self.engine, prefix=self.settings.redis_key_prefix)

    def run_once(self) -> Report:
        report = Report()
        with session_scope(self.engine) as session:
            expired = lifecycle.expire_overdue_jobs(session, now=utcnow())
            # what the expired jobs spent counts, and what they held is given back
            settled = budget_holds.settle(session, Job.id.in_(expired)) if expired else []
        report.expired = len(expired)
        try:
            self.budgets.apply(settled)
        except redis.RedisError as exc:  # the reservations expire, the spend reloads
            log.warning("budgets of %d expired jobs not settled: %s", len(expired), exc)
        try:
            if not self._lead():
                report.skipped = "another reconciler holds the lock"
                return report
            self._republish(report)
        except (redis.RedisError, OSError) as exc:
            report.skipped = f"broker unreachable: {exc}"
        return report

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # keep reconciling through database outages
                log.exception("reconcile pass failed")
            else:
                if report.eventful:
                    log.info("reconciled: %s", report)
            stop.wait(self.settings.reconcile_interval_s)

    def _lead(self) -> bool:
        """Take or keep the reconciler lock (held for a few passes, renewed each pass)."""
        key, ttl_ms = self._prefix + "lock", int(self.settings.reconcile_interval_s * 5000)
        if self.client.set(key, self.token, nx=True, px=ttl_ms):
            return True
        if self.client.get(key) == self.token.encode():
            self.client.pexpire(key, ttl_ms)
            return True
        return False

    def _republish(self, report: Report) -> None:
        settings, now = self.settings, utcnow()
        marker = self._prefix + "epoch"
        if self.client.get(marker) is None:
            report.redis_lost = True
            declare_queues(self.celery)
            report.restored = self._restore_all()
            self.client.set(marker, now.isoformat())
        # A dead lease is re-published once, and again only if that message died too.
        grace = settings.reconcile_grace_s
        found = self._send(partial(lifecycle.dead_leases, now=now, requeue_s=2 * grace))
        report.stale = len(found)
        # Deferred jobs are published shortly before they are due, with a countdown:
        # a worker only ever holds a few seconds' worth of wake-ups when it dies.
        lookahead = max(3.0, 2 * settings.reconcile_interval_s)
        due = partial(lifecycle.due_unsent, now=now, lookahead_s=lookahead)
        report.woken = len(self._send(due))
        depths = read_depths(self.client, prefix=settings.redis_key_prefix, count_jobs=False)
        for tier in ALL_TIERS:
            if depths[tier.queue].depth == 0:
                lost = partial(lifecycle.lost_waiting, tier=tier.value, now=now, grace_s=grace)
                report.orphaned += len(self._send(lost))
        with session_scope(self.engine) as session:  # the provider batch path's steps
            report.provider_batches = provider_batch_driver.drive(
                session, self.celery, lambda: self.catalog, settings, now
            )

    def _restore_all(self) -> int:
        total, after = 0, ""
        while pending := self._send(partial(lifecycle.pending_jobs, after_id=after)):
            total += len(pending)
            after = pending[-1].job_id
        return total

    def _send(
        self, find: Callable[[Session], Sequence[lifecycle.Pending]]
    ) -> Sequence[lifecycle.Pending]:
        """Find and mark jobs, publish them, and commit the marks only if publishing worked."""
        with session_scope(self.engine) as session:
            pending = find(session)
            if pending:
                publish(self.celery, messages(pending), chunk=self.settings.batch_message_jobs)
        return pending


def build_reconciler(settings: Settings) -> Reconciler:
    """A reconciler wired to the configured database and broker."""
    from orchestrator.queues.app import make_celery
    from orchestrator.store.db import get_engine

    client = redis.Redis.from_url(
        settings.effective_redis_url, socket_timeout=5, socket_connect_timeout=2
    )
    engine = get_engine(settings.effective_database_url)
    return Reconciler(settings, engine, make_celery(settings), client)
