"""Prometheus metrics of the API process, served on ``GET /metrics``.

Counters and histograms are kept in this process (requests by route and
status, jobs admitted by tier and priority, chat completions, rate-limit
refusals); cluster-wide gauges are read when scraped: queue depth per tier and
priority from Redis, and jobs waiting or running per tier from the database.
Worker processes serve their own metrics (``workers.worker_metrics``). Run one API
process per container (scale containers, not ``--workers``), or each scrape
sees one process only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Select, func, literal, or_, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.queues.depth import read_depths
from orchestrator.store.models import Job

HTTP_REQUESTS = Counter(
    "switchyard_http_requests_total", "API requests", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "switchyard_http_request_duration_seconds",
    "API request duration (a chat completion includes its wait)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CHAT_COMPLETIONS = Counter(
    "switchyard_chat_completions_total", "OpenAI-compatible chat completions", ["stream", "outcome"]
)
API_RATE_LIMITED = Counter(
    "switchyard_api_rate_limited_total", "API requests refused by a tenant's rate limit"
)


def unfinished_jobs() -> Select[str, str, int]:
    """Jobs queued, running or retrying, counted by tier and state (the gauge's query).

    Written as two conditions, each the predicate of a partial index (migration 0015:
    ``ix_jobs_status_next`` on queued and retrying jobs, ``ix_jobs_status_lease`` on
    running ones), with the states inline so that every plan can prove it: Postgres
    combines the two indexes instead of reading the whole table, which keeps every
    finished job ever run.
    """
    waiting = [literal(s, literal_execute=True) for s in ("queued", "retrying")]
    running = literal("running", literal_execute=True)
    return (
        select(Job.tier, Job.status, func.count())
        .where(or_(Job.status.in_(waiting), Job.status == running))
        .group_by(Job.tier, Job.status)
    )


class HttpMetrics:
    """ASGI middleware: counts and times each request by its route template (not its path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)


class ClusterCollector(Collector):
    """Queue depth per tier and priority (Redis) and waiting or running jobs per tier (DB)."""

    def __init__(self, client: redis.Redis, prefix: str, engine: Engine) -> None:
        self.client = client
        self.prefix = prefix
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "switchyard_queue_depth", "Jobs waiting per tier queue", labels=["tier", "priority"]
        )
        try:
            for tier, queue in read_depths(self.client, prefix=self.prefix).items():
                for priority, count in queue.by_priority.items():
                    depth.add_metric([tier, priority], count)
        except redis.RedisError:
            pass
        yield depth
        jobs = GaugeMetricFamily(
            "switchyard_jobs", "Jobs not final yet, by tier and state", labels=["tier", "state"]
        )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(unfinished_jobs()).all()
        except Exception:  # the database is down: leave the series out this scrape
            rows = []
        for tier, state, count in rows:
            jobs.add_metric([tier, state], int(count))
        yield jobs
