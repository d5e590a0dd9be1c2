"""``switchyard notifier``: sends completion webhooks for jobs and batches that ended.

Each pass: (1) every final job with a ``callback_url`` and every finished batch
with one gets an outbox row (``webhook_deliveries``), written in the same
transaction that marks it notified, so whatever ended it (a worker, a cancel,
the reconciler's expiry) it is notified exactly once; (2) due deliveries are
POSTed, signed with the tenant's secret (``orchestrator.wire.webhooks``), each try
within a total deadline of ``webhook_timeout_s`` and reading at most 64 KiB of
the answer (``orchestrator.services.webhook_post``); a failure is retried with exponential
backoff up to ``webhook_max_attempts`` times. The target host is resolved again
before every try and the request pinned to the address checked, so a name that
now points inside the network is refused.
Several notifiers may run: rows are claimed by compare-and-set.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from orchestrator.core.config import Settings
from orchestrator.core.errors import ValidationFailed
from orchestrator.jobs.views import batch_view, job_view
from orchestrator.services.webhook_post import bounded_post, webhook_client
from orchestrator.store import outbox, repo, tenants
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import utcnow
from orchestrator.wire.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    backoff_s,
    pin_callback_url,
    sign,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Send:
    """One delivery to attempt, copied out of its row."""

    id: str
    tenant_id: str
    kind: str
    url: str
    payload: dict[str, Any]
    attempts: int


class Notifier:
    """Finds what ended, writes its notification, and delivers notifications with backoff."""

    def __init__(self, settings: Settings, engine: Engine, http: httpx.Client) -> None:
        self.settings = settings
        self.engine = engine
        self.http = http
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")

    def run_once(self) -> dict[str, int]:
        queued = self.enqueue()
        outcomes = self.deliver()
        return {"queued": queued, **outcomes}

    def run_forever(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # the database may be restarting: try again next pass
                log.exception("notifier pass failed")
            time.sleep(self.settings.notifier_interval_s)

    def enqueue(self) -> int:
        queued = 0
        with session_scope(self.engine) as session:
            for job in outbox.finished_jobs_to_notify(session, limit=500):
                payload = {"type": "job.finished", "job": job_view(job).model_dump(mode="json")}
                assert job.callback_url is not None
                outbox.add_delivery(
                    session,
                    tenant_id=job.tenant_id,
                    kind="job",
                    object_id=job.id,
                    url=job.callback_url,
                    payload=payload,
                )
                queued += 1
            for batch in outbox.batches_to_notify(session, limit=100):
                totals = repo.batch_totals(session, tenant_id=batch.tenant_id, batch_id=batch.id)
                view = batch_view(batch, totals)
                if not view.status.final or not outbox.claim_batch(session, batch_id=batch.id):
                    continue
                assert batch.callback_url is not None
                outbox.add_delivery(
                    session,
                    tenant_id=batch.tenant_id,
                    kind="batch",
                    object_id=batch.id,
                    url=batch.callback_url,
                    payload={"type": "batch.finished", "batch": view.model_dump(mode="json")},
                )
                queued += 1
        return queued

    def deliver(self) -> dict[str, int]:
        lease_s = self.settings.webhook_timeout_s * 3
        with session_scope(self.engine) as session:
            due = [
                Send(d.id, d.tenant_id, d.kind, d.url, d.payload, d.attempts)
                for d in outbox.claim_due(session, limit=64, lease_s=lease_s)
            ]
        errors = list(self.pool.map(self._deliver_one, due))
        return {"delivered": errors.count(None), "failed": len(errors) - errors.count(None)}

    def _deliver_one(self, send: Send) -> str | None:
        with session_scope(self.engine) as session:
            secret = tenants.webhook_secret(session, tenant_id=send.tenant_id)
        error = self._post(send, secret)
        tries = send.attempts + 1
        retry_at = None
        if error is not None and tries < self.settings.webhook_max_attempts:
            retry_at = utcnow() + timedelta(seconds=backoff_s(tries))
        with session_scope(self.engine) as session:
            outbox.record_try(session, delivery_id=send.id, error=error, retry_at=retry_at)
        return error

    def _post(self, send: Send, secret: str) -> str | None:
        """One try; None when the receiver took it, else why not (kept on the row)."""
        try:  # resolved again now, and pinned to the address checked (orchestrator.wire.webhooks)
            target = pin_callback_url(send.url, allow_private=self.settings.webhook_allow_private)
        except ValidationFailed as exc:
            return exc.message
        body = json.dumps(send.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "switchyard-webhooks",
            EVENT_HEADER: str(send.payload.get("type", send.kind)),
            DELIVERY_HEADER: send.id,
            SIGNATURE_HEADER: sign(secret, body),
        }
        url, extensions = send.url, {}
        if target is not None:
            url, headers["Host"] = target.url, target.host_header
            if target.sni_hostname:
                extensions["sni_hostname"] = target.sni_hostname
        return bounded_post(
            self.http,
            url,
            body=body,
            headers=headers,
            extensions=extensions,
            timeout_s=self.settings.webhook_timeout_s,
        )


def build_notifier(settings: Settings) -> Notifier:
    engine = get_engine(settings.effective_database_url, pool_size=4)
    return Notifier(settings, engine, webhook_client(settings.webhook_timeout_s))
