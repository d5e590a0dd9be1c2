"""The worker-side Celery app: the orchestrator's app plus the task bodies.

Start one per tier: ``switchyard worker --tier code`` (threads pool).
"""

from __future__ import annotations

import gc
from typing import Any

from celery import bootsteps
from celery.signals import worker_init, worker_ready

from orchestrator.core.config import get_settings
from orchestrator.queues.app import make_celery

HUB_TICK_S = 0.05


class HubTick(bootsteps.StartStopStep):  # type: ignore[misc]
    """Wake the consumer's event loop every ``HUB_TICK_S``, so it never sleeps a second.

    A task's acknowledgement is sent from the pool thread that ran it, which does
    not wake the event loop. While every prefetch slot was taken the loop had no
    fetch registered and slept in ``poll`` for up to a second (its default when no
    timer is due), so a slot freed by an acknowledgement stayed unused that long:
    interactive jobs arriving meanwhile waited up to ~1 s on the queue while a
    batch drained (BENCHMARKS.md). A timer this short makes the loop look again.
    """

    requires = ("celery.worker.components:Hub",)

    def start(self, parent: Any) -> None:
        if parent.hub is not None:
            parent.hub.call_repeatedly(HUB_TICK_S, _nothing)


def _nothing() -> None:
    """A timer's callback: waking the loop is the point."""


app = make_celery(get_settings())
app.conf.imports = ("workers.tasks",)
app.steps["worker"].add(HubTick)


@worker_init.connect  # type: ignore[untyped-decorator]
def _serve_metrics(**_: Any) -> None:
    """Each worker process serves Prometheus metrics on its own port (0: none)."""
    from workers.worker_metrics import serve

    settings = get_settings()
    serve(settings.worker_metrics_port, settings.worker_metrics_host)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _freeze_startup(**_: Any) -> None:
    """Build the process's runtime now, then keep all that startup made out of the
    garbage collector's full passes (``gc.freeze``), as the API does.

    Those objects live as long as the process; a full pass over them took tens of
    milliseconds, a stall every running job shared (``switchyard bench overhead``,
    ``running_p99_ms``).
    """
    from workers.runtime import runtime

    runtime()
    gc.collect()
    gc.freeze()
