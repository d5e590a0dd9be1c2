"""The worker-side Celery app: the orchestrator's app plus the task bodies.

Start one per tier: ``switchyard worker --tier code`` (threads pool).
"""

from __future__ import annotations

from orchestrator.config import get_settings
from orchestrator.queues import make_celery

app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
