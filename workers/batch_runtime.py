"""The process-wide ``Advancer`` for provider batches, built on first use.

It shares the worker process's runtime (settings, catalog, engine, HTTP client),
budget settler and completion reporter, and sends its countdown messages through
the worker's Celery app.
"""

from __future__ import annotations

import threading
from functools import partial

from orchestrator.jobs.completion_events import publish_many_done
from orchestrator.services.provider_batch_driver import Due, send_advance
from workers.app import app
from workers.batch_advance import Advancer
from workers.batch_context import BatchContext
from workers.budget_settle import settler
from workers.completion_reporter import reporter
from workers.runtime import runtime

_advancer: Advancer | None = None
_lock = threading.Lock()


def _countdown(due: Due, delay_s: float) -> None:
    send_advance(app, due, countdown_s=delay_s)


def advancer() -> Advancer:
    """The process's advancer."""
    global _advancer
    with _lock:
        if _advancer is None:
            shared = runtime()
            events = reporter()
            announce = partial(publish_many_done, events.client, prefix=events.prefix)
            ctx = BatchContext(
                settings=shared.settings,
                catalog=shared.catalog,
                engine=shared.engine,
                http=shared.http,
                owner=f"{shared.owner}:provider-batch",
                scheduler=_countdown,
                budgets=settler(shared).budgets,
                announce=lambda ended: announce(ended=ended),
            )
            _advancer = Advancer(ctx)
        return _advancer
