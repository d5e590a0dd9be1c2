"""The ``switchyard`` command (``main``), one module per command group:
``admin_commands`` (tenants, keys), ``job_commands`` (submit, jobs, batches),
``experiment_commands``, ``routing_commands`` (route, eval; with
``routing_show`` and ``tier_commands``), ``usage_commands`` and
``bench_commands``.

May import: anything; nothing imports it.
"""
