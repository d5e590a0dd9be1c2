"""Advancing one provider batch by one or more steps; what the advance task runs.

    take the batch (compare-and-set hold: one task at a time; a dead task's lapses)
    prepared    fix its lines (up to the catalog's byte limit; the rest wait for the
                next batch), write ``uploading``, upload ``<id>.jsonl``; a provider
                whose requests go inline (Anthropic, Gemini) has no file: ``uploaded``
    uploading   (a retry: the task before died) our file if the provider has it
                (``find_file``), else upload; write ``uploaded`` + file id
    uploaded    write ``submitting``, create the provider batch tagged with our id
                (inline: with its lines, fixed now from the store as above); a
                provider whose batches carry no tag (Anthropic) only while no other
                batch of it is ``submitting``, else again in a moment
    submitting  (a retry) our provider batch if it exists (``find_batch``, given
                what the store knows: ``BatchContext.manifest``), else create;
                write ``submitted`` + provider batch id
    submitted   (no line left ``batched``: every job was withdrawn, cancelled or gone
                synchronous near its deadline) cancel it at the provider first;
                poll; still running: ``next_poll_at`` with capped exponential backoff
                (the time since submission, between ``provider_batch_poll_s`` and
                ``provider_batch_poll_max_s``) and a countdown message for then;
                ended: write ``collecting`` + its files
    collecting  ``workers.batch_collect``: answers written, the rest sent back; ``done``

Every provider is spoken to through its ``BatchAdapter`` (``workers.providers.batch_base``).

Each state is written (under the hold) before the external step it names, so no
provider batch is ever created twice and no result is lost: a retried step
finds what its predecessor did. A provider error before submission that will
not go away (a 4xx) sends every line back to the synchronous path; any other
is retried later with backoff. The advance task's message carries the batch id
only; a lost countdown is re-sent by the reconciler
(``orchestrator.services.provider_batch_driver``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from orchestrator.core.catalog import Deployment
from orchestrator.store.models import as_utc, utcnow
from orchestrator.store.provider_batch_lines import batched_left, lines_of
from orchestrator.store.provider_batch_models import ProviderBatch
from workers.batch_collect import CHUNK, WITHDRAWN, Collected, completions, write_chunk
from workers.batch_context import BatchContext, Lost
from workers.batch_files import build_file
from workers.providers import ProviderError
from workers.providers.batch_base import BatchAdapter, BatchState

log = logging.getLogger(__name__)
MAX_ERROR_BACKOFF_S = 300.0
ALONE_WAIT_S = 2.0  # another create of the provider is under way: ask again this soon


class Advancer:
    """Advances provider batches for one worker process (settings, catalog, engine, http)."""

    def __init__(self, ctx: BatchContext) -> None:
        self.ctx = ctx

    def advance(self, batch_id: str) -> str:
        """One delivery of the advance task; returns what it did, for the task's log."""
        held = self.ctx.take(batch_id)
        if held is None:
            return "held elsewhere or done"
        try:
            try:
                return self._steps(held)
            except ProviderError as exc:
                return self._after_error(held, exc)
        except Lost:
            return "hold lost"

    def _steps(self, held: ProviderBatch) -> str:
        deployment = self.ctx.catalog.find(held.deployment)
        adapter = self.ctx.adapter(deployment)
        if deployment is None or adapter is None:
            return self._give_up(held, f"{held.deployment} has no batch API here any more")
        Step = Callable[[ProviderBatch, Deployment, BatchAdapter], str | None]
        steps: dict[str, Step] = {
            "prepared": self._upload,
            "uploading": self._upload,
            "uploaded": self._submit,
            "submitting": self._submit,
            "submitted": self._poll,
            "collecting": self._collect,
        }
        while held.state in steps:
            ended = steps[held.state](held, deployment, adapter)
            if ended is not None:
                return ended
        return held.state

    def _build(self, held: ProviderBatch, dep: Deployment, adapter: BatchAdapter) -> list[bytes]:
        return self.ctx.tx(
            lambda s: build_file(s, batch_id=held.id, deployment=dep, line=adapter.line)
        )

    def _upload(self, held: ProviderBatch, dep: Deployment, adapter: BatchAdapter) -> None:
        if not adapter.uploads:  # inline requests: no file; they are fixed at submission
            self.ctx.write(held, {"state": "uploaded"})
            return
        name = f"{held.id}.jsonl"
        file_id = adapter.find_file(name) if held.state == "uploading" else None
        if file_id is None:  # not uploaded yet (or the upload before a crash never landed)
            lines = self._build(held, dep, adapter)
            if not lines:
                self.ctx.write(held, self._empty())
                return
            self.ctx.write(held, {"state": "uploading", "lines": len(lines)})
            file_id = adapter.upload(name, lines)
        self.ctx.write(held, {"state": "uploaded", "provider_file_id": file_id})

    def _submit(self, held: ProviderBatch, dep: Deployment, adapter: BatchAdapter) -> str | None:
        found = None
        if held.state == "submitting":
            found = adapter.find_batch(self.ctx.manifest(held))
        if found is None:
            lines: list[bytes] = []
            if adapter.uploads:
                assert held.provider_file_id is not None
            else:
                lines = self._build(held, dep, adapter)
                if not lines:  # no line left (all went elsewhere meanwhile)
                    self.ctx.write(held, self._empty())
                    return None
            sent = {"lines": len(lines)} if lines else {}
            if not self._begin(held, adapter, {"state": "submitting"} | sent):
                wait_s = min(self.ctx.settings.provider_batch_poll_s, ALONE_WAIT_S)
                return self._later(held, wait_s, "waiting: another create of its provider")
            found = adapter.create(held.provider_file_id, held.id, lines)
        now = utcnow()
        values = {"state": "submitted", "provider_batch_id": found.id, "submitted_at": now}
        self.ctx.write(held, values | {"provider_status": found.status})
        return self._later(held, self.ctx.settings.provider_batch_poll_s, "submitted")

    def _begin(self, held: ProviderBatch, adapter: BatchAdapter, values: dict[str, Any]) -> bool:
        """Write ``submitting``; for a provider whose batches carry no tag of ours, only
        while no other batch of it is submitting (False: wait), so a lost create is
        never confused with another's (``provider_batches.begin_alone``)."""
        if adapter.tagged:
            self.ctx.write(held, values)
            return True
        return self.ctx.write_alone(held, values)

    def _poll(self, held: ProviderBatch, dep: Deployment, adapter: BatchAdapter) -> str | None:
        assert held.provider_batch_id is not None
        state = self._cancel_if_unwanted(held, adapter) or adapter.poll(held.provider_batch_id)
        now = utcnow()
        if not state.ended:
            self.ctx.write(held, {"provider_status": state.status, "polled_at": now})
            wait_s = self._backoff_s(held, now)
            if state.status == "cancelling":  # soon over: its partial output is read then
                wait_s = self.ctx.settings.provider_batch_poll_s
            return self._later(held, wait_s, f"polled: {state.status}")
        values: dict[str, Any] = {
            "state": "collecting",
            "provider_status": state.status,
            "output_file_id": state.output_file_id,
            "error_file_id": state.error_file_id,
            "polled_at": now,
        }
        self.ctx.write(held, values)
        return None

    def _cancel_if_unwanted(self, held: ProviderBatch, adapter: BatchAdapter) -> BatchState | None:
        """Cancel the batch at the provider if no line of it wants an answer any more
        (once: a batch already ``cancelling`` is only polled)."""
        if held.provider_status in ("cancelling", "cancelled") or held.provider_batch_id is None:
            return None
        if self.ctx.tx(lambda s: batched_left(s, batch_id=held.id)) > 0:
            return None
        try:
            state = adapter.cancel(held.provider_batch_id)
        except ProviderError as exc:
            if exc.retryable:
                raise
            return None  # it ended meanwhile (409): polling says how
        log.info("provider batch %s: no line wants an answer; cancelled", held.id)
        return state

    def _collect(self, held: ProviderBatch, dep: Deployment, adapter: BatchAdapter) -> str:
        done = collect_all(self.ctx, held, dep, adapter)
        values = {
            "state": "done",
            "succeeded": len(done.answered) + len(done.billed),
            "failed": len(done.released) + len(done.waiting),
            "finished_at": utcnow(),
            "locked_until": None,
        }
        self.ctx.write(held, values)
        said = f"done: {len(done.answered)} answered, {len(done.released)} sent back"
        return said + (f", {len(done.waiting)} back to wait" if done.waiting else "")

    @staticmethod
    def _empty() -> dict[str, Any]:
        return {"state": "done", "lines": 0, "finished_at": utcnow()}

    def _backoff_s(self, held: ProviderBatch, now: datetime) -> float:
        """Capped exponential: wait as long again as the batch has run so far."""
        settings = self.ctx.settings
        since = as_utc(held.submitted_at or now)
        waited = (now - since).total_seconds()
        return min(settings.provider_batch_poll_max_s, max(settings.provider_batch_poll_s, waited))

    def _later(self, held: ProviderBatch, delay_s: float, said: str) -> str:
        """Let go of the batch until ``delay_s`` from now, and send its countdown message."""
        due = utcnow() + timedelta(seconds=delay_s)
        self.ctx.let_go(held, due)
        self.ctx.schedule(held, delay_s)
        return said

    def _after_error(self, held: ProviderBatch, exc: ProviderError) -> str:
        if not exc.retryable and held.state in ("prepared", "uploading", "uploaded", "submitting"):
            return self._give_up(held, f"the provider refused the batch: {exc}")
        first_s = self.ctx.settings.provider_batch_poll_s
        delay_s = min(MAX_ERROR_BACKOFF_S, first_s * 2 ** min(held.attempts, 16))
        log.warning("provider batch %s (%s): %s; again in %.0fs", held.id, held.state, exc, delay_s)
        self.ctx.write(held, {"error": str(exc)[:1000]})
        return self._later(held, delay_s, f"error: {exc}")

    def _give_up(self, held: ProviderBatch, error: str) -> str:
        """Send every line back to the synchronous path and end the batch."""
        _, released = self.ctx.send_back(held)
        values = {"state": "done", "error": error[:1000], "finished_at": utcnow()}
        self.ctx.write(held, values | {"failed": len(released), "locked_until": None})
        return f"gave up: {error}"


def collect_all(
    ctx: BatchContext, held: ProviderBatch, dep: Deployment, adapter: BatchAdapter
) -> Collected:
    """Write every answered line (a chunk per transaction), then send the rest back."""
    assert held.provider_batch_id is not None
    lines = ctx.lines(held)
    found = adapter.results(
        held.provider_batch_id, held.output_file_id, held.error_file_id, ctx.manifest(held, lines)
    )
    ready = completions(lines, found.bodies, adapter.parse)
    # answers the provider still gave for withdrawn lines: billed, never the job's answer
    withdrawn = ctx.tx(lambda s: lines_of(s, batch_id=held.id, state=WITHDRAWN))
    ready += completions(withdrawn, found.bodies, adapter.parse)
    latency_ms = _elapsed_ms(held.submitted_at, held.polled_at)
    total = Collected()
    for start in range(0, len(ready), CHUNK):
        chunk = ready[start : start + CHUNK]
        ctx.write(held, {})  # renews the hold, or stops if another task took the batch
        write = partial(
            write_chunk,
            answers=chunk,
            deployment=dep,
            owner=ctx.owner,
            lease_s=ctx.lease_s,
            latency_ms=latency_ms,
        )
        done = ctx.tx(write)
        ctx.after_answers(done.answered + done.billed, done.answered)
        total.answered += done.answered
        total.billed += done.billed
    # failed lines, and any an end left unfinished: another batch, or sync
    total.waiting, total.released = ctx.send_back(held, frozenset(found.final))
    return total


def _elapsed_ms(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    return max(0, int((as_utc(end) - as_utc(start)).total_seconds() * 1000))
