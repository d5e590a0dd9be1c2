"""Switchyard data plane: Celery tasks and provider adapters."""
