"""Pipelines and cascades on the control plane: routing a multi-step job and
building its step rows (``planner``), and its progress as the API shows it
(``progress``). The step shapes are ``orchestrator.core.pipeline_schemas``.

May import: core, store, routing.
"""
