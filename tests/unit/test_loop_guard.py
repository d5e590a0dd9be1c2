"""The guard of work that may run on the API's event loop (``orchestrator.core.loop_guard``)."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.core.loop_guard import NeedsIO, memory_only, needs_io


def test_a_blocking_read_is_refused_inside_the_guard_only() -> None:
    needs_io("the database")  # outside: nothing happens
    with memory_only(), pytest.raises(NeedsIO, match="the database"):
        needs_io("the database")
    needs_io("the database")  # and nothing again once the guard is left


def test_the_guard_holds_for_its_own_task_only() -> None:
    # Given one task inside the guard, waiting, and another task outside it
    async def guarded(started: asyncio.Event, go_on: asyncio.Event) -> None:
        with memory_only():
            started.set()
            await go_on.wait()
            with pytest.raises(NeedsIO):
                needs_io("Redis")

    async def main() -> None:
        started, go_on = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(guarded(started, go_on))
        await started.wait()
        # Then the other task reads freely while the first is inside its guard
        needs_io("Redis")
        go_on.set()
        await task

    asyncio.run(main())
