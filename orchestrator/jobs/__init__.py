"""Jobs after admission: cancel and re-drive (``control``) and completion events
(``completion_events``: a worker says a job ended, a waiting request wakes).

May import: core, store, queues, costs.
"""
