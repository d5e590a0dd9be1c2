"""A/B tests of routing strategies: arm assignment at admission
(``assignment``), their rows and per-job outcomes (``records``), per-arm figures
(``arm_stats``, ``rates``), the guardrail that pauses a losing arm
(``guardrail``), the optional judge (``judge``), plots (``arm_plot``) and
experiments declared in the catalog (``catalog_sync``).

May import: core, wire, store, routing.
"""
