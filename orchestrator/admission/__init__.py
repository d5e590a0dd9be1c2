"""Admission: work comes in, is validated, routed, written down and published.

``dispatch`` (the ``Dispatcher``: classify, plan, write job rows, publish ids),
``loop_writes`` (the API event loop's own Postgres pool and message producer,
for a small interactive job admitted without a thread),
``batch_intake`` (an uploaded JSON Lines file -> jobs), ``session_hook`` (sessions
and the response cache, run for every job admitted) and ``json_body`` (the one
bounded JSON decoder for what clients send).

May import: core, wire, store, queues, routing, costs, cache, sessions,
pipelines, experiments, jobs.
"""
