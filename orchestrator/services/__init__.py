"""Long-running services beside the API and the workers: the reconciler
(re-publishes lost or due work from Postgres), the provider batch driver it runs,
and the notifier with its webhook POST.

May import: core, wire, store, queues, costs, jobs.
"""
