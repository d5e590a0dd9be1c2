"""The broker: the Celery app factory and ``publish`` (``app``), kombu's Redis
transport with shared clients (``broker_transport``), queue depth per tier (``depth``)
and the app Flower runs on (``flower_app``). Task bodies live in ``workers``.

May import: core (``depth`` also reads store rows).
"""
