"""Switchyard: an orchestration cluster for LLM work.

The control plane (API, routing, store, queues, simulator, CLI) lives here; the
data plane (Celery tasks and provider adapters) lives in ``workers``.
"""

__version__ = "0.1.0"
