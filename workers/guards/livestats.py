"""Feeds every call's latency, output length and outcome into the live statistics.

The dispatcher predicts each deployment's latency and error rate from these
(``orchestrator.routing.live_stats``, ``orchestrator.routing.objective``). The guard
never stops a call: a Redis error is logged and the call goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import redis

from orchestrator.core.schemas import Completion
from orchestrator.routing.live_stats import LiveStats
from workers.guards.base import Call, Guard
from workers.providers.errors import ProviderError

log = logging.getLogger(__name__)


@dataclass
class LiveStatsGuard(Guard):
    """Times each call (it runs last, just before the call) and records how it went."""

    stats: LiveStats
    _started: threading.local = field(default_factory=threading.local)

    def before_call(self, call: Call) -> None:
        self._started.at = time.perf_counter()

    def _elapsed_ms(self) -> float | None:
        started: float | None = getattr(self._started, "at", None)
        self._started.at = None
        return None if started is None else (time.perf_counter() - started) * 1000

    def after_success(self, call: Call, completion: Completion) -> None:
        latency_ms = self._elapsed_ms()
        if latency_ms is None:
            return
        ttft_ms: float | None = getattr(completion, "ttft_ms", None)  # streaming adapters
        try:
            self.stats.record_success(
                call.name,
                latency_ms=latency_ms,
                output_tokens=completion.usage.output_tokens,
                ttft_ms=ttft_ms,
            )
        except redis.RedisError as exc:
            log.warning("live stats for %s not recorded: %s", call.name, exc)

    def after_failure(self, call: Call, error: ProviderError) -> None:
        self._elapsed_ms()
        try:
            self.stats.record_failure(call.name)
        except redis.RedisError as exc:
            log.warning("live stats for %s not recorded: %s", call.name, exc)
