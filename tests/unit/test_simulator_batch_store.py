"""The simulator's provider-batch timeline, driven by an explicit clock (no sleeping).

Lines finish evenly over 90% of the processing time, the batch ends at 100%; an
expiring batch finishes only its first half; a cancel keeps what has finished
(except in Gemini, which keeps nothing).
"""

from __future__ import annotations

from types import ModuleType

import pytest

from orchestrator.simulator import batch_openai, gemini_wire, openai_wire
from orchestrator.simulator.batch_store import MAX_BATCH_LINES, BatchLine, SimBatch, batch_seed
from orchestrator.simulator.config import Profile, SimulatorConfig
from orchestrator.simulator.engine import Engine
from orchestrator.simulator.wire import SimError

T0 = 1_000.0


def _engine(**profile: object) -> Engine:
    return Engine(SimulatorConfig(default=Profile.model_validate(profile)))


def _batch(n: int, processing_s: float = 10.0, fmt: ModuleType = openai_wire) -> SimBatch:
    lines = []
    for i in range(n):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]}
        lines.append(BatchLine(f"r{i}", openai_wire.parse(body)))
    batch = SimBatch(f"batch_{n}x{processing_s}", fmt, lines, T0, processing_s)
    batch.meta = {"input_file_id": "file-x", "metadata": None, "errors": None, "model": "m"}
    return batch


def test_lines_finish_evenly_then_the_batch_finalizes_and_completes() -> None:
    # Given a 4-line batch taking 10 s (lines finish at 2.25, 4.5, 6.75 and 9 s)
    engine, batch = _engine(), _batch(4)
    engine.batches.add(batch, engine)
    # When read at 4.5 s, 9.5 s and 10 s
    engine.batches.refresh(batch, T0 + 4.5, engine)
    halfway = batch_openai.render(batch, T0 + 4.5)
    engine.batches.refresh(batch, T0 + 9.5, engine)
    finalizing = batch_openai.render(batch, T0 + 9.5)
    engine.batches.refresh(batch, T0 + 10, engine)
    done = batch_openai.render(batch, T0 + 10)
    # Then it is in progress with two lines done, then finalizing, then completed
    assert halfway["status"] == "in_progress"
    assert halfway["request_counts"] == {"total": 4, "completed": 2, "failed": 0}
    assert finalizing["status"] == "finalizing" and finalizing["finalizing_at"] == int(T0 + 9)
    assert done["status"] == "completed" and done["completed_at"] == int(T0 + 10)
    assert done["output_file_id"] and done["error_file_id"] is None
    assert engine.stats.batch_total.as_dict()["lines_served"] == 4


def test_an_expiring_batch_finishes_its_first_half_and_expires_the_rest() -> None:
    # Given an expiring 4-line batch
    engine, batch = _engine(), _batch(4)
    batch.expires = True
    engine.batches.add(batch, engine)
    # When its processing time is up
    engine.batches.refresh(batch, T0 + 10, engine)
    # Then two lines succeeded, two expired, and the batch expired at its end
    assert [line.outcome for line in batch.lines] == ["succeeded"] * 2 + ["expired"] * 2
    assert batch_openai.render(batch, T0 + 10)["expired_at"] == int(T0 + 10)
    counts = engine.stats.batch_total.as_dict()
    assert (counts["expired"], counts["lines_served"], counts["lines_expired"]) == (1, 2, 2)


@pytest.mark.parametrize(("fmt", "kept"), [(openai_wire, 1), (gemini_wire, 0)])
def test_a_cancel_keeps_finished_lines_where_the_provider_does(fmt: ModuleType, kept: int) -> None:
    # Given a 4-line batch in the format of a provider
    engine, batch = _engine(), _batch(4, fmt=fmt)
    batch.keeps_partial = fmt is not gemini_wire
    engine.batches.add(batch, engine)
    # When cancelled at 3 s (one line finished)
    assert engine.batches.cancel(batch, T0 + 3, engine) is True
    # Then OpenAI keeps that line's answer, Gemini keeps none; the rest are canceled
    assert batch.tally()["succeeded"] == kept
    assert batch.tally()["canceled"] == 4 - kept
    assert batch.end == "cancelled" and batch.ended_s == T0 + 3
    # And a second cancel finds it ended
    assert engine.batches.cancel(batch, T0 + 4, engine) is False


def test_line_failures_are_drawn_per_input_at_the_configured_rate() -> None:
    # Given a line error rate of 25%, drawn evenly over the inputs
    engine = _engine(batch_line_error_rate=0.25, fault_draw="even")
    batch = _batch(8, processing_s=0)
    engine.batches.add(batch, engine)
    # When the batch is read
    engine.batches.refresh(batch, T0, engine)
    # Then exactly two lines failed, with a 500, and the rest succeeded
    failed = [line for line in batch.lines if line.outcome == "errored"]
    assert len(failed) == 2
    assert all(line.failure is not None and line.failure.status == 500 for line in failed)


def test_the_store_drops_ended_batches_when_full_and_refuses_when_all_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a store whose batch count is capped at 2, holding one ended and one running batch
    monkeypatch.setattr("orchestrator.simulator.batch_store.MAX_BATCHES", 2)
    engine = _engine()
    store = engine.batches
    ended, running = _batch(1, processing_s=0), _batch(2, processing_s=100)
    store.add(ended, engine)
    store.refresh(ended, T0, engine)
    store.add(running, engine)
    # When a third batch comes, the ended one makes room
    store.add(_batch(3, processing_s=100), engine)
    assert ended.id not in store.batches and running.id in store.batches
    # Then a fourth, with both held batches running, is refused with a 400
    with pytest.raises(SimError) as refused:
        store.add(_batch(4, processing_s=100), engine)
    assert refused.value.status == 400
    # And a batch over the per-batch line cap is refused at once
    too_many = [BatchLine("k", None)] * (MAX_BATCH_LINES + 1)
    huge = SimBatch("batch_huge", openai_wire, too_many, T0, 0)
    with pytest.raises(SimError, match=str(MAX_BATCH_LINES)):
        store.add(huge, engine)


def test_expiry_is_drawn_from_the_batch_content() -> None:
    # Given half of all batches picked to expire, by hash
    engine = _engine(batch_expire_rate=0.5)
    store = engine.batches

    def fates() -> list[bool]:
        batches = [_batch(n, processing_s=n) for n in range(1, 21)]
        return [
            store.picked_to_expire(engine, ["gpt-4o-mini"], batch_seed(b.lines), {})
            for b in batches
        ]

    # When twenty different batches are submitted twice
    first, again = fates(), fates()
    # Then each content meets the same fate both times, and some (not all) expire
    assert first == again
    assert 0 < sum(first) < 20
