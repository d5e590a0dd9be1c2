"""What a worker reports when a delivery of a job ends: the completion event and metrics.

Called by the task body with the outcome of ``Runtime.execute``; a final outcome
wakes any API request waiting on the job (``orchestrator.jobs.completion_events``). Failing to
report never fails the job: the database already holds its result.
"""

from __future__ import annotations

import logging
import threading

import redis

from orchestrator.core.batching import Combiner, Later, is_alone
from orchestrator.core.config import Settings, get_settings
from orchestrator.jobs.completion_events import publish_many_done
from workers import worker_metrics as metrics
from workers.execute import Outcome

log = logging.getLogger(__name__)
FINAL_OUTCOMES = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED})


class CompletionReporter:
    """Publishes a completion event per final delivery and counts every delivery's outcome."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.prefix = settings.redis_key_prefix
        self.client = client
        # events of jobs ending at the same moment go in one pipeline; a batch job's
        # are sent in the background (at most 50 ms later): nobody waits for most
        self._events: Combiner[str, None] = Combiner(self._publish)
        self._later: Later[str] = Later(self._publish, name="switchyard-completion-events")

    def _publish(self, ended: dict[str, object]) -> dict[str, None]:
        statuses = {job_id: str(status) for job_id, status in ended.items()}
        publish_many_done(self.client, prefix=self.prefix, ended=statuses)
        return dict.fromkeys(ended)

    def report(
        self, job_id: str, outcome: Outcome, *, tier: str, answer: str | None = None
    ) -> None:
        """Count the delivery; a final one's event is its status, or ``answer``
        (``orchestrator.jobs.completion_events.answer_event``) for a waiter to answer from."""
        metrics.child(metrics.JOBS_ENDED, tier, outcome.value).inc()
        if outcome not in FINAL_OUTCOMES:
            return
        if not is_alone():
            self._later.put(job_id, outcome.value)
            return
        try:
            self._events.ask(job_id, answer or outcome.value)
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
