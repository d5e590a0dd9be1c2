"""Core: what every other part of Switchyard shares.

Settings (``config``, the only reader of the environment), the error tree
(``errors``), the canonical request and response models (``schemas``,
``messages``, ``pipeline_schemas``), tiers, the model catalog and its prices
(``catalog``, ``catalog.yaml``), offline token estimates (``tokens``), group
commit for many threads (``batching``), tenants' JSON Schemas checked in bounded
time (``json_schemas`` and its ``json_schema_*`` helpers), the shape of an
experiment as declared (``experiment_specs``) and the guard of work that may run
on the API's event loop (``loop_guard``).

May import: nothing else of ``orchestrator`` (checked by import-linter).
"""
