"""The worker-side Celery app: the orchestrator's app plus the task bodies.

Start one per tier: ``switchyard worker --tier code`` (threads pool).
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init

from orchestrator.config import get_settings
from orchestrator.queues import make_celery

app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)


@worker_init.connect  # type: ignore[untyped-decorator]
def _serve_metrics(**_: Any) -> None:
    """Each worker process serves Prometheus metrics on its own port (0: none)."""
    from workers.metrics import serve

    settings = get_settings()
    serve(settings.worker_metrics_port, settings.worker_metrics_host)
