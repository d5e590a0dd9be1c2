"""Money: prices x usage (``pricing``), upper bounds before work runs (``bounds``),
admission's cost hook (``admission_hook``: default objectives, reservations),
tenant budgets (``budgets``, ``budget_metrics``) and spend reports
(``usage_reports``).

May import: core, store, routing.live_stats.
"""
