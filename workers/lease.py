"""The lease heartbeat: one thread per worker process keeps its running jobs' leases alive.

A job's lease is short (``job_lease_s``, 30 s by default) so that the job of a
worker that died is taken over quickly; a live worker renews the leases of all
the jobs it runs in one UPDATE every third of that. A job whose lease this
process no longer holds (cancelled, expired, or taken over after the database
was unreachable too long) is flagged, and its attempt loop stops at the next
check instead of calling the provider again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.store import leases
from orchestrator.store.db import session_scope

log = logging.getLogger(__name__)


class Held:
    """One job this process runs; ``lost`` is set once its lease is gone."""

    def __init__(self) -> None:
        self.lost = threading.Event()


class LeaseKeeper:
    """Renews every held lease of this process, from one daemon thread."""

    def __init__(self, engine: Engine, *, owner_prefix: str, lease_s: float) -> None:
        self.engine = engine
        self.owner_prefix = owner_prefix
        self.lease_s = lease_s
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @contextmanager
    def hold(self, job_id: str) -> Iterator[Held]:
        """Keep ``job_id``'s lease alive for the duration of the block."""
        held = Held()
        with self._lock:
            self._held[job_id] = held
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="switchyard-lease", daemon=True
                )
                self._thread.start()
        try:
            yield held
        finally:
            with self._lock:
                self._held.pop(job_id, None)

    def renew_once(self) -> None:
        """One heartbeat: renew every held lease and flag the ones this process lost."""
        with self._lock:
            snapshot = dict(self._held)
        if not snapshot:
            return
        with session_scope(self.engine) as session:
            kept = leases.renew_leases(
                session,
                job_ids=list(snapshot),
                owner_prefix=self.owner_prefix,
                lease_s=self.lease_s,
            )
        for job_id, held in snapshot.items():
            if job_id not in kept:
                held.lost.set()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.renew_once()
            except SQLAlchemyError as exc:
                log.warning("lease heartbeat failed (will retry): %s", exc)
