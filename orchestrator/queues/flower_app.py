"""The Celery app Flower runs on: the cluster's app, on kombu's own Redis transport.

Flower's Broker tab builds its Redis client from the connection's URI and picks
a client class by the URI's scheme. Under Switchyard's transport
(``orchestrator.queues.broker_transport``, named by ``broker_transport``) that scheme is
the transport's dotted name, which Flower does not know, so the tab answered 404
("'redis' broker is not supported"). Flower only reads queue lengths, events and
worker replies, which travel the same Redis keys with kombu's plain transport, so
its app keeps every setting (queues, priority steps, key prefix) but the transport:
the URI is then the plain ``redis://`` one and the tab lists each tier queue with
its messages, Redis priority sub-lists summed.

``switchyard flower`` runs ``celery -A orchestrator.queues.flower_app flower``.
"""

from __future__ import annotations

from celery import Celery

from orchestrator.core.config import get_settings
from orchestrator.queues.app import make_celery


def make_flower_app() -> Celery:
    """The cluster's Celery app with kombu's Redis transport chosen by the URL."""
    app = make_celery(get_settings())
    app.conf.broker_transport = None
    return app


app = make_flower_app()
