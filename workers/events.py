"""What a worker reports when a delivery of a job ends: the completion event and metrics.

Called by the task body with the outcome of ``Runtime.execute``; a final outcome
wakes any API request waiting on the job (``orchestrator.events``). Failing to
report never fails the job: the database already holds its result.
"""

from __future__ import annotations

import logging
import threading

import redis

from orchestrator.config import Settings, get_settings
from orchestrator.events import publish_done
from workers import metrics
from workers.execute import Outcome

log = logging.getLogger(__name__)
FINAL_OUTCOMES = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED})


class CompletionReporter:
    """Publishes a completion event per final delivery and counts every delivery's outcome."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.prefix = settings.redis_key_prefix
        self.client = client

    def report(self, job_id: str, outcome: Outcome, *, tier: str) -> None:
        metrics.JOBS_ENDED.labels(tier=tier, state=outcome.value).inc()
        if outcome not in FINAL_OUTCOMES:
            return
        try:
            publish_done(self.client, prefix=self.prefix, job_id=job_id, status=outcome.value)
        except redis.RedisError as exc:
            log.warning("completion event for %s not sent (%s); waiters poll", job_id, exc)


_reporter: CompletionReporter | None = None
_lock = threading.Lock()


def reporter() -> CompletionReporter:
    """The process-wide reporter, built on first use."""
    global _reporter
    with _lock:
        if _reporter is None:
            settings = get_settings()
            client = redis.Redis.from_url(
                settings.effective_redis_url, socket_timeout=5, socket_connect_timeout=2
            )
            _reporter = CompletionReporter(settings, client)
        return _reporter
