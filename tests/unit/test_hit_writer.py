"""The cache-hit writer's retries: it backs off while the database is down, then writes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from orchestrator.cache import hit_writer
from orchestrator.cache.hit_writer import HitWriter


def test_a_write_that_fails_is_retried_with_growing_delays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky(_engine: Any, batch: list[Any]) -> None:
        calls.append(len(batch))
        if len(calls) < 3:
            raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(hit_writer, "write_hits", flaky)
    monkeypatch.setattr(hit_writer.time, "sleep", slept.append)
    HitWriter(create_engine("sqlite://"))._write([{"job": {}}])
    assert calls == [1, 1, 1]  # two failures, then the write that lands
    assert slept == [0.2, 0.4]


def test_a_bug_drops_the_batch_without_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(_engine: Any, batch: list[Any]) -> None:
        calls.append(len(batch))
        raise TypeError("not JSON serializable")

    monkeypatch.setattr(hit_writer, "write_hits", broken)
    HitWriter(create_engine("sqlite://"))._write([{"job": {}}])
    assert calls == [1]
