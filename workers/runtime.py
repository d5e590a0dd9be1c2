"""The process-wide ``Runtime``: built once per worker process, shared by its threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import redis

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings, get_settings
from orchestrator.costs.admission_hook import hold_seconds
from orchestrator.costs.budgets import Budgets
from orchestrator.store.db import get_engine
from workers.context_hook import conversation_guards
from workers.execute import Runtime
from workers.guards import default_guards
from workers.guards.budget import BudgetGuard
from workers.http_pools import worker_client
from workers.worker_metrics import observe, watch_breakers

DB_POOL_MAX = 32
_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def build_runtime(settings: Settings) -> Runtime:
    """Resources for one process: catalog, DB engine, one httpx client, the guards."""
    http = worker_client(settings.provider_timeout_s)  # a small pool per thread
    # writes are short: a few dozen connections serve hundreds of threads
    pool_size = min(settings.worker_concurrency, DB_POOL_MAX)
    engine = get_engine(
        settings.effective_database_url, pool_size=pool_size, pre_ping=False, overflow=False
    )
    shared = redis.Redis.from_url(
        settings.effective_redis_url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=10,
    )

    catalog = load_catalog(settings)
    first = conversation_guards(settings, engine, shared)  # sessions, response cache
    budgets = Budgets(shared, engine, prefix=settings.redis_key_prefix)
    budget = BudgetGuard(budgets, engine, hold_s=hold_seconds(settings))  # tops a job up
    guards = observe([*first, budget, *default_guards(settings, shared)])
    watch_breakers(guards, catalog)
    return Runtime(settings, catalog, engine, http, guards=guards)


def runtime() -> Runtime:
    """The process-wide runtime, built on first use by any worker thread."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings())
        return _runtime


_job_threads: ThreadPoolExecutor | None = None


def job_threads() -> ThreadPoolExecutor:
    """The threads that run a batch message's jobs, ``worker_concurrency`` of them.

    A batch message's Celery thread only waits for its jobs, so the jobs in
    flight are bounded by these threads (plus the interactive jobs, each in its
    message's own Celery thread), not by how many jobs a message carries.
    """
    global _job_threads
    with _runtime_lock:
        if _job_threads is None:
            size = get_settings().worker_concurrency
            _job_threads = ThreadPoolExecutor(size, thread_name_prefix="switchyard-job")
        return _job_threads
