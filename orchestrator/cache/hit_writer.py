"""Write-behind for response-cache hits answered by the API: rows in the background, batched.

A chat completion answered from the cache must not wait for a database commit
(one fsync'd commit can take longer than the whole hit). Its job, attempt and
ledger rows go to an in-process queue instead; one thread writes whatever has
queued, up to MAX_BATCH hits per transaction, at most every FLUSH_S. So the
rows appear within about FLUSH_S (0.25 s) of the answer. Few, larger
transactions, each table's rows sent as JSON that Postgres expands, keep the
thread's share of the interpreter small, so answers are not held up behind it
(the ORM's bulk insert held it long enough to show in the tail of ``switchyard
bench cache``; BENCHMARKS.md). If the database is down the batch is retried with
backoff for RETRY_FOR_S, then logged and dropped: they record zero-cost
answers, never money. What is queued when the process exits
normally is written by an ``atexit`` hook; a killed process loses it.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from typing import Any, cast

from sqlalchemy import Engine, Table
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.store.bulk import insert_many
from orchestrator.store.models import Attempt, Job, LedgerEntry

log = logging.getLogger(__name__)
FLUSH_S = 0.25
MAX_BATCH = 500
MAX_PENDING = 100_000
RETRY_FOR_S = 30.0
JSON_CHUNK = 50  # rows per statement: json.dumps holds the interpreter while it runs

Rows = dict[str, dict[str, Any]]


def write_hits(engine: Engine, batch: list[Rows]) -> None:
    """Insert the rows of every hit in ``batch`` in one transaction.

    Each table's rows go as JSON that Postgres expands (``store.bulk``), in
    chunks of JSON_CHUNK, so the thread holds the interpreter briefly and
    answers on the event loop are not held up behind it.
    """
    with engine.begin() as conn:
        for table, key in _TABLES:
            insert_many(conn, table, [r[key] for r in batch], chunk=JSON_CHUNK)


_TABLES: tuple[tuple[Table, str], ...] = (
    (cast(Table, Job.__table__), "job"),
    (cast(Table, Attempt.__table__), "attempt"),
    (cast(Table, LedgerEntry.__table__), "ledger"),
)


class HitWriter:
    """One background thread per process that writes queued cache-hit rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: queue.Queue[Rows] = queue.Queue(maxsize=MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, rows: Rows) -> None:
        """Queue one hit's rows (written at once, in this thread, if the queue is full)."""
        self._start()
        try:
            self.pending.put_nowait(rows)
        except queue.Full:
            write_hits(self.engine, [rows])

    def flush(self) -> None:
        """Write everything queued so far, in the calling thread."""
        batch = self._drain(block=False)
        while batch:
            self._write(batch)
            batch = self._drain(block=False)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hit-writer", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def _drain(self, *, block: bool) -> list[Rows]:
        batch: list[Rows] = []
        try:
            if block:
                batch.append(self.pending.get(timeout=1.0))
            while len(batch) < MAX_BATCH:
                batch.append(self.pending.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _run(self) -> None:
        while True:
            batch = self._drain(block=True)
            if batch:
                self._write(batch)
                time.sleep(FLUSH_S)

    def _write(self, batch: list[Rows]) -> None:
        delay_s, give_up = 0.2, time.monotonic() + RETRY_FOR_S
        while True:
            try:
                write_hits(self.engine, batch)
                return
            except SQLAlchemyError as exc:
                if time.monotonic() + delay_s > give_up:
                    log.error("%d cache-hit rows not written: %s", len(batch), type(exc).__name__)
                    return
            except Exception:  # a bug must not stop the thread: drop this batch, go on
                log.exception("%d cache-hit rows not written", len(batch))
                return
            time.sleep(delay_s)  # the database is down: back off, then try again
            delay_s = min(delay_s * 2, 5.0)
