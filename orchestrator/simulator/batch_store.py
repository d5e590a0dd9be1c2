"""Provider batches held in memory, shared by the OpenAI, Anthropic and Gemini batch APIs.

A batch is a list of lines (one request each) created at ``created_s`` that takes
``processing_s`` (the slowest ``batch_processing_s`` of its models). Nothing runs in
the background: every read calls ``BatchStore.refresh(batch, now_s, engine)``, which
works out what happened since the last read:

    line i (of n) finishes at   created_s + 0.9 * processing_s * (i + 1) / n
    finalizing from             created_s + 0.9 * processing_s   (OpenAI reports it)
    the batch ends at           created_s + processing_s

A line is answered when it finishes, by ``Engine.answer_line`` (the synchronous
endpoint's answer; ``batch_line_error_rate`` on top). A batch picked to expire
(``batch_expire_rate``, at most ``batch_expire_max`` per model, or the create
request's ``x-simulator-batch-expire: true`` header) finishes only its first half
and ends ``expired``: its other lines are ``expired``. A cancel ends the batch at
once: finished lines keep their answers, the rest are ``canceled``. A format whose
provider returns nothing for an expired or cancelled batch (Gemini) sets
``keeps_partial=False``, and then every line of such a batch ends unanswered.

Bounds: ``MAX_BATCH_LINES`` lines in one batch, ``MAX_BATCHES`` batches and
``MAX_HELD_LINES`` lines held in all; when full, the oldest ended batch is dropped,
and a batch that still does not fit is refused with a 400.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from orchestrator.simulator.wire import Answer, SimCall, SimError, seed_of

if TYPE_CHECKING:
    from orchestrator.simulator.engine import Engine

MAX_BATCH_LINES = 50_000
MAX_BATCHES = 1_000
MAX_HELD_LINES = 200_000
MAX_BODY_BYTES = 32 * 1024 * 1024
FINALIZING_SHARE = 0.9
EXPIRE_HEADER = "x-simulator-batch-expire"


@dataclass(slots=True)
class BatchLine:
    """One request of a batch: its key, its parsed call (or why it is invalid), its outcome."""

    key: str
    call: SimCall | None
    error: SimError | None = None  # the request itself is invalid (answered as an error)
    extra: Any = None  # format-specific data carried to the result (Gemini's metadata)
    outcome: str = "processing"  # then: succeeded, errored, canceled, expired
    answer: Answer | None = None
    failure: SimError | None = None


@dataclass(slots=True)
class SimBatch:
    """A provider batch: its lines, its timing and how (whether) it ended."""

    id: str
    fmt: ModuleType  # the wire module that parses and renders its lines
    lines: list[BatchLine]
    created_s: float
    processing_s: float
    expires: bool = False
    keeps_partial: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    answered: int = 0  # lines[:answered] have finished
    ended_s: float | None = None
    end: str | None = None  # completed, failed, expired or cancelled
    cancel_s: float | None = None

    @property
    def runnable(self) -> int:
        """How many lines will finish: all, or the first half of an expiring batch."""
        return len(self.lines) // 2 if self.expires else len(self.lines)

    def ready_s(self, index: int) -> float:
        share = FINALIZING_SHARE * (index + 1) / max(1, len(self.lines))
        return self.created_s + self.processing_s * share

    @property
    def finalizing_s(self) -> float:
        return self.created_s + self.processing_s * FINALIZING_SHARE

    @property
    def end_s(self) -> float:
        return self.created_s + self.processing_s

    def tally(self) -> dict[str, int]:
        """Lines by outcome: processing, succeeded, errored, canceled, expired."""
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for line in self.lines:
            counts[line.outcome] += 1
        return counts


class BatchStore:
    """Every format's batches, oldest first; bounded, with lazy time-based progress."""

    def __init__(self) -> None:
        self.batches: OrderedDict[str, SimBatch] = OrderedDict()
        self.held_lines = 0
        self.expired_by_model: dict[str, int] = {}

    def add(self, batch: SimBatch, engine: Engine) -> None:
        """Hold ``batch`` (dropping the oldest ended batches if full) and count it."""
        size = len(batch.lines)
        if size > MAX_BATCH_LINES:
            raise SimError(400, f"a batch holds at most {MAX_BATCH_LINES} requests, got {size}")
        while len(self.batches) >= MAX_BATCHES or self.held_lines + size > MAX_HELD_LINES:
            oldest = next((b for b in self.batches.values() if b.end is not None), None)
            if oldest is None:
                raise SimError(400, "too many batches in progress in the simulator; retry later")
            self.remove(oldest.id)
        self.batches[batch.id] = batch
        self.held_lines += size
        engine.stats.batch(batch.fmt.NAME, "created")
        engine.stats.batch(batch.fmt.NAME, "lines_received", size)
        if batch.end is not None:  # failed validation: it ends as it is created
            engine.stats.batch(batch.fmt.NAME, batch.end)

    def get(self, batch_id: str, fmt: ModuleType) -> SimBatch:
        """The batch of format ``fmt`` with this id, or a 404 ``SimError``."""
        batch = self.batches.get(batch_id)
        if batch is None or batch.fmt is not fmt:
            raise SimError(404, f"No batch found with id '{batch_id}'.", "not_found")
        return batch

    def remove(self, batch_id: str) -> None:
        batch = self.batches.pop(batch_id, None)
        if batch is not None:
            self.held_lines -= len(batch.lines)

    def page(
        self, fmt: ModuleType, limit: int, after: str | None = None, before: str | None = None
    ) -> tuple[list[SimBatch], bool]:
        """Newest first: up to ``limit`` batches older than ``after`` (or newer than ``before``)."""
        newest = [b for b in reversed(self.batches.values()) if b.fmt is fmt]
        ids = [b.id for b in newest]
        if before is not None:
            cut = ids.index(before) if before in ids else 0
            return newest[max(0, cut - limit) : cut], cut > limit
        if after is not None:
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        return newest[:limit], len(newest) > limit

    def refresh(self, batch: SimBatch, now_s: float, engine: Engine) -> None:
        """Answer the lines that have finished by ``now_s``; end the batch when its time is up."""
        if batch.end is not None:
            return
        while batch.answered < batch.runnable and batch.ready_s(batch.answered) <= now_s:
            _answer(batch, batch.lines[batch.answered], engine)
            batch.answered += 1
        if now_s >= batch.end_s:
            self._end(batch, "expired" if batch.expires else "completed", batch.end_s, engine)

    def cancel(self, batch: SimBatch, now_s: float, engine: Engine) -> bool:
        """Cancel ``batch`` now; False when it had already ended."""
        self.refresh(batch, now_s, engine)
        if batch.end is not None:
            return False
        batch.cancel_s = now_s
        self._end(batch, "cancelled", now_s, engine)
        return True

    def _end(self, batch: SimBatch, end: str, at_s: float, engine: Engine) -> None:
        unfinished = "canceled" if end == "cancelled" else "expired"
        keep = batch.keeps_partial or end == "completed"
        for line in batch.lines:
            if line.outcome == "processing" or not keep:
                line.outcome, line.answer, line.failure = unfinished, None, None
        batch.end, batch.ended_s = end, at_s
        _count_end(batch, engine)

    def picked_to_expire(
        self, engine: Engine, models: list[str], seed: int, headers: Mapping[str, str]
    ) -> bool:
        """Whether a new batch of ``models`` expires: the header, else its first model's rate."""
        if headers.get(EXPIRE_HEADER, "").strip().lower() in ("1", "true", "yes"):
            return True
        model = models[0] if models else ""
        profile = engine.config.profile(model)
        rate, limit = profile.batch_expire_rate, profile.batch_expire_max
        done = self.expired_by_model.get(model, 0)
        if rate <= 0 or (limit is not None and done >= limit):
            return False
        if not engine.faults.picked(model, "batch_expire", seed, rate, profile.fault_draw):
            return False
        self.expired_by_model[model] = done + 1
        return True


def _answer(batch: SimBatch, line: BatchLine, engine: Engine) -> None:
    if line.call is None:
        line.outcome, line.failure = "errored", line.error
        return
    try:
        line.answer = engine.answer_line(batch.fmt, line.call, batch.id)
        line.outcome = "succeeded"
    except SimError as exc:
        line.outcome, line.failure = "errored", exc


def _count_end(batch: SimBatch, engine: Engine) -> None:
    name = batch.fmt.NAME
    engine.stats.batch(name, batch.end or "completed")
    tally = batch.tally()
    for outcome, key in (
        ("succeeded", "lines_served"),
        ("errored", "lines_failed"),
        ("expired", "lines_expired"),
        ("canceled", "lines_cancelled"),
    ):
        engine.stats.batch(name, key, tally[outcome])
    for line in batch.lines:
        if line.answer is not None and line.call is not None:
            engine.stats.batch(name, "input_tokens", line.call.prompt_tokens)
            engine.stats.batch(name, "output_tokens", line.answer.output_tokens)


def processing_s(engine: Engine, models: list[str]) -> float:
    """A batch's processing time: the slowest ``batch_processing_s`` of its models."""
    return max((engine.config.profile(m).batch_processing_s for m in set(models)), default=0.0)


def batch_seed(lines: list[BatchLine]) -> int:
    """The stable hash a batch's expiry is drawn from: its content (keys and requests)."""
    return seed_of("batch", [(line.key, line.call.seed if line.call else 0) for line in lines])


def now_s() -> float:
    return time.time()


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with a 413 beyond ``limit`` bytes (before reading it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise SimError(413, f"The request body is larger than {limit} bytes.", code="too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise SimError(413, f"The request body is larger than {limit} bytes.", code="too_large")
    return bytes(body)


async def read_json(request: Request) -> Any:
    try:
        return json.loads(await read_body(request))
    except ValueError:
        raise SimError(400, "We could not parse the JSON body of your request.") from None


def respond(payload: object, status: int = 200, media_type: str = "application/json") -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=media_type)


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows)
