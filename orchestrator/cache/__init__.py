"""The response cache: exact-match answers in Redis (``responses``), the API's fast
path for a hit (``hits``) and the write-behind of hit rows (``hit_writer``).

May import: core, wire, store, queues.
"""
