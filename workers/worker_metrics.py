"""Prometheus metrics of a worker process, served on ``SWITCHYARD_WORKER_METRICS_PORT``.

Each worker process serves its own ``/metrics`` (0: none). Under ``switchyard
up`` every worker gets its own port counting up from
``SWITCHYARD_WORKER_METRICS_BASE_PORT``; in Kubernetes every pod uses the same
one. A process that cannot bind its port logs it and runs on without metrics.

Metrics come from hooks, not from branches in the attempt loop: ``observe``
wraps the guards so every signal and every second spent in a guard (rate-limit
sleeps) is counted, and appends ``MetricsGuard``, which times each provider
call and counts its outcome, tokens and cost. Breaker states are read from
Redis when scraped.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from orchestrator.core.catalog import Catalog
from orchestrator.core.schemas import Completion
from orchestrator.costs.pricing import cost_micro_usd
from workers.guards import Call, CircuitBreakerGuard, Guard, GuardSignal, RateLimitWait
from workers.guards.breaker import CircuitBreaker
from workers.providers.errors import ProviderError

log = logging.getLogger(__name__)

JOBS_ENDED = Counter(
    "switchyard_jobs_ended_total", "Deliveries of jobs by tier and outcome", ["tier", "state"]
)
PROVIDER_REQUESTS = Counter(
    "switchyard_provider_requests_total",
    "Provider calls by deployment and outcome (ok or the error class)",
    ["deployment", "provider", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "switchyard_provider_latency_seconds",
    "Provider call latency",
    ["deployment", "provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
TOKENS = Counter(
    "switchyard_tokens_total",
    "Tokens of answered calls by tier, provider and kind",
    ["tier", "provider", "kind"],
)
COST = Counter("switchyard_cost_micro_usd_total", "Spend of answered calls", ["tier", "provider"])
CACHE_HITS = Counter(
    "switchyard_provider_cache_hits_total",
    "Answered calls that read part of their prompt from the provider's cache",
    ["deployment"],
)
GUARD_SIGNALS = Counter(
    "switchyard_guard_signals_total",
    "Guard decisions (skip, retry, rate-limit wait, fail) by guard and deployment",
    ["guard", "signal", "deployment"],
)
RATELIMIT_WAITS = Counter(
    "switchyard_ratelimit_waits_total",
    "Jobs handed back because no rate-limit slot was near",
    ["deployment"],
)
GUARD_SECONDS = Histogram(
    "switchyard_guard_wait_seconds",
    "Time spent in a guard before a call (rate-limit sleeps, breaker checks)",
    ["guard"],
    buckets=(0.001, 0.01, 0.05, 0.25, 1, 2.5, 5),
)
BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}


@functools.lru_cache(maxsize=4096)
def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per label set (several times a job)."""
    return metric.labels(*values)


@dataclass
class Observed(Guard):
    """A guard wrapped so its signals and its time before each call are counted."""

    inner: Guard

    def before_call(self, call: Call) -> None:
        name = type(self.inner).__name__
        started = time.perf_counter()
        try:
            self.inner.before_call(call)
        except GuardSignal as signal:
            child(GUARD_SIGNALS, name, type(signal).__name__, call.name).inc()
            if isinstance(signal, RateLimitWait):
                child(RATELIMIT_WAITS, call.name).inc()
            raise
        finally:
            child(GUARD_SECONDS, name).observe(time.perf_counter() - started)

    def after_success(self, call: Call, completion: Completion) -> None:
        self.inner.after_success(call, completion)

    def after_accepted(self, call: Call, completion: Completion) -> None:
        self.inner.after_accepted(call, completion)

    def after_failure(self, call: Call, error: ProviderError) -> None:
        try:
            self.inner.after_failure(call, error)
        except GuardSignal as signal:
            child(GUARD_SIGNALS, type(self.inner).__name__, type(signal).__name__, call.name).inc()
            raise


class MetricsGuard(Guard):
    """Last guard: runs right before the call, so it times the call itself."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_call(self, call: Call) -> None:
        self._local.started = time.perf_counter()

    def _latency(self, call: Call) -> None:
        started = getattr(self._local, "started", None)
        if started is not None:
            child(PROVIDER_LATENCY, call.name, call.deployment.provider).observe(
                time.perf_counter() - started
            )

    def after_success(self, call: Call, completion: Completion) -> None:
        deployment, usage = call.deployment, completion.usage
        self._latency(call)
        child(PROVIDER_REQUESTS, call.name, deployment.provider, "ok").inc()
        tier = call.tier or "unknown"
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            child(TOKENS, tier, deployment.provider, kind).inc(count)
        child(COST, tier, deployment.provider).inc(cost_micro_usd(deployment, usage))
        if usage.cached_input_tokens:
            child(CACHE_HITS, call.name).inc()

    def after_failure(self, call: Call, error: ProviderError) -> None:
        self._latency(call)
        child(PROVIDER_REQUESTS, call.name, call.deployment.provider, type(error).__name__).inc()


def observe(guards: Sequence[Guard]) -> list[Guard]:
    """The guards, each counted, then the call timer."""
    return [*(Observed(g) for g in guards), MetricsGuard()]


class BreakerCollector(Collector):
    """``switchyard_breaker_state`` per deployment (0 closed, 1 half-open, 2 open), from Redis."""

    def __init__(self, breaker: CircuitBreaker, catalog: Catalog) -> None:
        self.breaker = breaker
        self.catalog = catalog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "switchyard_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            labels=["deployment"],
        )
        for deployment in self.catalog.deployments:
            try:
                state = self.breaker.state(deployment)
            except Exception:  # Redis down: leave the series out this scrape
                continue
            family.add_metric([deployment.name], BREAKER_CODES.get(state, 0))
        yield family


def watch_breakers(guards: Sequence[Guard], catalog: Catalog) -> None:
    """Register the breaker collector for the breaker guard among ``guards`` (once)."""
    for guard in guards:
        inner: Any = guard.inner if isinstance(guard, Observed) else guard
        if isinstance(inner, CircuitBreakerGuard):
            with contextlib.suppress(ValueError):  # already registered in this process
                REGISTRY.register(BreakerCollector(inner.breaker, catalog))
            return


def serve(port: int, host: str) -> bool:
    """Serve ``/metrics`` on ``host:port``; False (logged) if the port is taken."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("worker metrics not served on %s:%s: %s", host, port, exc)
        return False
    return True
