"""Work that may run on the API's event loop, and the reads it must not make there.

A small interactive job is admitted on the event loop when every hook of
admission can answer from memory (issue 24; ``Dispatcher.asubmit_job``): its
caches are fresh, it has no budget to reserve, no session to look up, no callback
host to resolve. Admission runs as always inside ``memory_only()``; a hook about
to read the database or Redis, or to resolve a name, calls ``needs_io(what)``
first, which raises ``NeedsIO`` inside the guard and does nothing outside it. The
caller then admits the same request in a thread, where the hooks read as always
(and refresh their caches for the next request). So admission is written once,
and nothing blocking runs on the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_MEMORY_ONLY: ContextVar[bool] = ContextVar("switchyard_memory_only", default=False)


class NeedsIO(Exception):
    """Raised inside ``memory_only()`` where the work would block; names what it needs."""


@contextmanager
def memory_only() -> Iterator[None]:
    """Within this block (this task or thread only), ``needs_io`` raises ``NeedsIO``."""
    token = _MEMORY_ONLY.set(True)
    try:
        yield
    finally:
        _MEMORY_ONLY.reset(token)


def needs_io(what: str) -> None:
    """Call before a blocking read: raises ``NeedsIO(what)`` inside ``memory_only()``."""
    if _MEMORY_ONLY.get():
        raise NeedsIO(what)
