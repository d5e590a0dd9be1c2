"""The combiner (core.batching) batches concurrent asks and answers each with its own result."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.core.batching import Combiner, Later, alone


def test_concurrent_asks_share_batches_and_each_gets_its_own_answer() -> None:
    batches: list[list[int]] = []
    gate = threading.Event()

    def serve(asked: dict[int, object]) -> dict[int, str]:
        batches.append(sorted(asked))
        if len(batches) == 1:
            gate.wait(5)  # hold the first batch while the others ask
        return {k: f"{k}:{v}" for k, v in asked.items()}

    combiner: Combiner[int, str] = Combiner(serve, max_batch=8)
    with ThreadPoolExecutor(20) as pool:
        first = pool.submit(combiner.ask, 0, "a")
        time.sleep(0.05)
        rest = [pool.submit(combiner.ask, k, "b") for k in range(1, 20)]
        time.sleep(0.1)
        gate.set()
        assert first.result(5) == "0:a"
        assert [f.result(5) for f in rest] == [f"{k}:b" for k in range(1, 20)]
    # the 19 asks made while the first batch ran went in batches of at most 8
    assert batches[0] == [0]
    assert sorted(k for b in batches[1:] for k in b) == list(range(1, 20))
    assert len(batches) == 4 and all(len(b) <= 8 for b in batches)


def test_a_failed_batch_raises_in_every_ask_and_the_next_batch_is_served() -> None:
    calls = {"n": 0}

    def serve(asked: dict[str, object]) -> dict[str, int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database down")
        return dict.fromkeys(asked, 1)

    combiner: Combiner[str, int] = Combiner(serve)
    with pytest.raises(RuntimeError, match="database down"):
        combiner.ask("x")
    assert combiner.ask("x") == 1


Served = list[tuple[list[str], int]]


def first_batch_held() -> tuple[Combiner[str, object], Served, threading.Event]:
    """A combiner whose first batch is held until the event is set; each batch served is
    recorded with the thread that served it, and every ask is answered with its value."""
    served: Served = []
    gate = threading.Event()

    def serve(asked: dict[str, object]) -> dict[str, object]:
        served.append((list(asked), threading.get_ident()))
        if len(served) == 1:
            gate.wait(5)
        return dict(asked)

    return Combiner(serve), served, gate


def test_the_same_key_twice_goes_in_separate_batches() -> None:
    combiner, served, gate = first_batch_held()
    with ThreadPoolExecutor(3) as pool:
        lead = pool.submit(combiner.ask, "lead", 0)
        time.sleep(0.05)
        one, two = pool.submit(combiner.ask, "job", 1), pool.submit(combiner.ask, "job", 2)
        time.sleep(0.1)
        gate.set()
        assert (lead.result(5), one.result(5), two.result(5)) == (0, 1, 2)
    assert [keys for keys, _ in served] == [["lead"], ["job"], ["job"]]


def test_a_thread_stops_serving_once_its_own_ask_is_answered() -> None:
    # Given a thread serving its own ask while two others ask meanwhile
    combiner, servers, gate = first_batch_held()
    threads: dict[str, int] = {}

    def ask(key: str) -> object:
        threads[key] = threading.get_ident()
        return combiner.ask(key, key)

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(ask, "first")
        time.sleep(0.05)
        later = [pool.submit(ask, k) for k in ("b", "c")]
        time.sleep(0.1)
        gate.set()
        assert [first.result(5), *(f.result(5) for f in later)] == ["first", "b", "c"]
    # Then the first thread served only its own batch; the oldest waiting ask served the next
    assert servers[0] == (["first"], threads["first"])
    assert servers[1] == (["b", "c"], threads["b"])


def test_a_lingering_combiner_waits_for_asks_arriving_just_after_the_first() -> None:
    # Given asks that arrive 2 ms apart, to a combiner that serves at once and to one
    # that lingers 0.2 s when fewer than 8 are waiting
    def batches_of(combiner_kwargs: dict[str, float]) -> list[list[int]]:
        batches: list[list[int]] = []

        def serve(asked: dict[int, object]) -> dict[int, int]:
            batches.append(sorted(asked))
            return {k: k for k in asked}

        combiner: Combiner[int, int] = Combiner(serve, **combiner_kwargs)  # type: ignore[arg-type]
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for k in range(8):
                futures.append(pool.submit(combiner.ask, k))
                time.sleep(0.002)
            assert [f.result(5) for f in futures] == list(range(8))
        return batches

    # When they are served; Then the lingering one served them in one batch, and an ask
    # made alone skipped the linger (served by its thread, at once)
    assert len(batches_of({})) > 1
    assert batches_of({"linger_s": 0.2, "fill": 8}) == [list(range(8))]
    lingering: Combiner[int, int] = Combiner(lambda a: {k: k for k in a}, linger_s=5, fill=8)
    started = time.monotonic()
    with alone():
        assert lingering.ask(1) == 1
    assert time.monotonic() - started < 1


def test_the_thread_handed_the_serving_does_not_linger_again() -> None:
    # Given a combiner that lingers 0.3 s when fewer than 8 asks wait, whose first batch
    # is held until a gate opens, and two asks that arrive while it is held
    gate = threading.Event()
    batches: list[list[str]] = []

    def serve(asked: dict[str, object]) -> dict[str, object]:
        batches.append(sorted(asked))
        if len(batches) == 1:
            gate.wait(5)
        return dict(asked)

    combiner: Combiner[str, object] = Combiner(serve, linger_s=0.3, fill=8)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(combiner.ask, "first", 1)
        time.sleep(0.4)  # past the first leader's own linger: its batch is being served
        later = [pool.submit(combiner.ask, k, k) for k in ("b", "c")]
        time.sleep(0.05)
        # When the first batch ends
        opened = time.monotonic()
        gate.set()
        assert [first.result(5), *(f.result(5) for f in later)] == [1, "b", "c"]
        waited = time.monotonic() - opened
    # Then the heir served the two waiting asks at once, without lingering 0.3 s again
    assert batches == [["first"], ["b", "c"]]
    assert waited < 0.2, waited


def test_an_ask_made_alone_is_served_at_once_by_its_own_thread() -> None:
    # Given a batch in flight that holds its serving thread
    combiner, served, gate = first_batch_held()
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(combiner.ask, "batch", 1)
        time.sleep(0.05)
        # When another thread asks alone; Then it is answered without waiting for the batch
        with alone():
            assert combiner.ask("urgent", 2) == 2
        assert not batch.done()
        gate.set()
        assert batch.result(5) == 1
    assert [keys for keys, _ in served] == [["batch"], ["urgent"]]


def test_later_serves_in_the_background_and_survives_a_failing_round() -> None:
    served: list[dict[int, object]] = []
    failed_once = threading.Event()

    def serve(waiting: dict[int, object]) -> None:
        if not failed_once.is_set():
            failed_once.set()
            raise RuntimeError("redis went away")  # logged; the next round goes on
        served.append(dict(waiting))

    later: Later[int] = Later(serve, name="test-later", every_s=0.01, max_batch=4)
    # Given a first round that fails
    later.put(0, "lost")
    deadline = time.monotonic() + 5
    while not failed_once.is_set():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    # When more requests are put, from many threads, and nobody waits for them
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: later.put(k, f"v{k}"), range(1, 41)))
    # Then every one of them is served, once, shortly after
    while sum(len(batch) for batch in served) < 40:
        assert time.monotonic() < deadline, "background requests were not served"
        time.sleep(0.005)
    keys = [k for batch in served for k in batch]
    assert sorted(keys) == list(range(1, 41))
    # And flush serves what waits at once, in the caller's thread
    later.every_s = 3600
    time.sleep(0.05)  # the sender is now asleep for the new period after its round
    later.put(99, "now")
    later.flush()
    assert served[-1] == {99: "now"}
