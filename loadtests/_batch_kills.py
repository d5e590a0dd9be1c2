"""SIGKILL the worker while a provider batch is uploaded, polled and downloaded.

The cluster runs one worker process, so the worker doing a step is the one
killed. ``Killer.tick`` reads the provider batches' states from Postgres (a few
milliseconds apart) and kills the worker as soon as a batch is seen in the
phase it waits for, then starts a replacement, as a process supervisor would:

    upload     a batch in ``uploading`` (its input file is being sent)
    polling    a batch in ``submitted`` that the live worker has polled (its next
               poll is a countdown message in that worker's memory)
    download   a batch in ``collecting`` (its output and error files are read
               and its answers written)

A kill counts as a hit when the batch is still in that state after the worker
is dead (the step was under way, not already past); a miss is tried again on the
next batch seen, up to ``tries`` times per phase. A phase that can no longer
come (no batch before it) is skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from loadtests._cluster import Cluster
from orchestrator.store.models import as_utc

PHASES = ("upload", "polling", "download")
BEFORE = {
    "upload": ("prepared", "uploading"),
    "polling": ("prepared", "uploading", "uploaded", "submitting", "submitted"),
    "download": ("prepared", "uploading", "uploaded", "submitting", "submitted", "collecting"),
}
WRITTEN = text(
    "SELECT count(*) FROM provider_batch_lines"
    " WHERE provider_batch_id = ANY(:ids) AND state IN ('answered', 'billed')"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATES = text("SELECT id, state, polled_at FROM provider_batches WHERE state <> 'done'")


@dataclass
class Killer:
    """The kill schedule: one phase at a time, in order."""

    cluster: Cluster
    tries: int = 5
    kills: list[dict[str, Any]] = field(default_factory=list)
    phase_index: int = 0
    tried: int = 0
    started: float = field(default_factory=time.monotonic)
    spawned_at: datetime = EPOCH  # when the live worker was started (the first: any time)

    @property
    def phase(self) -> str | None:
        return PHASES[self.phase_index] if self.phase_index < len(PHASES) else None

    def tick(self) -> bool:
        """Look once; kill if the phase is seen. False once every phase is over."""
        phase = self.phase
        if phase is None:
            return False
        rows = self._states()
        seen = [batch_id for batch_id, state, polled in rows if _in_phase(phase, state, polled)]
        if seen:
            self._kill(phase, seen)
        elif not any(state in BEFORE[phase] for _, state, _ in rows) and self._past_start():
            self._next(skipped=True)
        return self.phase is not None

    def _past_start(self) -> bool:
        # the first batches are gathered a pass or two after submission
        return time.monotonic() - self.started > 5.0

    def _states(self) -> list[tuple[str, str, bool]]:
        with self.cluster.engine.connect() as conn:
            rows = conn.execute(STATES).all()
        return [(r[0], r[1], r[2] is not None and as_utc(r[2]) >= self.spawned_at) for r in rows]

    def _kill(self, phase: str, seen: list[str]) -> None:
        worker = self.cluster.workers[0]
        at = round(time.monotonic() - self.started, 2)
        self.cluster.kill_worker(worker)
        after = {batch_id: state for batch_id, state, _ in self._states() if batch_id in seen}
        hit = any(_in_phase(phase, state, True) for state in after.values())
        kill = {"phase": phase, "at_s": at, "hit": hit, "batches_seen": len(seen)}
        kill |= self._progress(phase, seen)
        self.kills.append(kill | {"states_after": after})
        self.spawned_at = datetime.now(UTC)
        self.cluster.spawn_worker()
        self.tried += 1
        if hit or self.tried >= self.tries:
            self._next(skipped=False)

    def _progress(self, phase: str, seen: list[str]) -> dict[str, int]:
        """How far the killed step had got: input files the provider holds (upload),
        lines already written (download)."""
        if phase == "upload":
            files = httpx.get(f"{self.cluster.sim_base}/v1/files", timeout=10).json()
            names = {f.get("filename") for f in files.get("data") or []}
            return {"input_files_at_provider": sum(1 for b in seen if f"{b}.jsonl" in names)}
        if phase == "download":
            with self.cluster.engine.connect() as conn:
                written = conn.execute(WRITTEN, {"ids": seen}).scalar()
            return {"lines_written_before_kill": int(written or 0)}
        return {}

    def _next(self, *, skipped: bool) -> None:
        if skipped:
            gone = "no batch left before it"
            self.kills.append({"phase": self.phase, "hit": False, "skipped": gone})
        self.phase_index += 1
        self.tried = 0

    def report(self) -> dict[str, Any]:
        hits = [k["phase"] for k in self.kills if k.get("hit")]
        return {
            "kills_performed": sum(1 for k in self.kills if "at_s" in k),
            "kills_in_phase": {p: hits.count(p) for p in PHASES},
            "kills": self.kills,
        }


def _in_phase(phase: str, state: str, polled: bool) -> bool:
    if phase == "upload":
        return state == "uploading"
    if phase == "polling":
        return state == "submitted" and polled
    return state == "collecting"
