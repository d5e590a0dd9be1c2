"""The shared guards against a real Redis: GCRA rate limits, circuit breakers, retry delays.

Assertions are on what the scripts decide (delays they hand out, states they
report), never on how long anything took.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.core.batching import alone, is_alone
from orchestrator.core.catalog import Deployment, RateLimits
from orchestrator.core.tiers import Tier
from workers.guards import BreakerPolicy, CircuitBreaker, RateLimiter, RetryPolicy
from workers.guards import breaker as breaker_module
from workers.guards.breaker import Decision

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def prefix(key_prefix: str) -> str:
    return f"{key_prefix}guards-{secrets.token_hex(4)}:"


def deployment(rpm: int | None = None, tpm: int | None = None, **extra: Any) -> Deployment:
    return Deployment(
        name=f"dep-{secrets.token_hex(3)}",
        provider="simulator",
        model="m",
        base_url="http://127.0.0.1:1/v1",
        tiers=(Tier.FAST,),
        input_usd_per_mtok=1,
        output_usd_per_mtok=1,
        context_window=100_000,
        rate_limits=RateLimits(rpm=rpm, tpm=tpm),
        **extra,
    )


def test_gcra_spaces_calls_evenly_and_refuses_beyond_the_horizon(
    client: redis.Redis, prefix: str
) -> None:
    # Given 60 requests a minute (one a second) and no headroom
    limiter = RateLimiter(client, prefix=prefix, headroom=0.0)
    dep = deployment(rpm=60)
    # When four calls ask for a slot within 2.5 s
    permits = [limiter.acquire(dep, 10, horizon_s=2.5) for _ in range(4)]
    # Then the first goes now, the next two are booked one second apart, the fourth must wait
    assert [p.granted for p in permits] == [True, True, True, False]
    delays = [p.delay_s for p in permits]
    assert delays[0] == 0
    assert 0.9 < delays[1] <= 1.0 and 1.9 < delays[2] <= 2.0 and 2.9 < delays[3] <= 3.0
    assert permits[2].at_ms - permits[1].at_ms == pytest.approx(1000, abs=1)


def test_a_caller_handed_back_reserves_no_slot_and_keeps_its_place_in_line(
    client: redis.Redis, prefix: str
) -> None:
    # Given one call every 10 s and a caller holding the next slot
    limiter = RateLimiter(client, prefix=prefix, headroom=0.0)
    dep = deployment(rpm=6)
    first = limiter.acquire(dep, 1, horizon_s=2.5)
    assert first.granted and first.delay_s == 0
    # When two more callers cannot have a slot within 2.5 s
    second = limiter.acquire(dep, 1, horizon_s=2.5)
    third = limiter.acquire(dep, 1, horizon_s=2.5)
    # Then each is given a place in line, one call apart, and no slot is reserved
    assert not second.granted and not third.granted
    assert second.at_ms == pytest.approx(first.at_ms + 10_000, abs=1)
    assert third.at_ms == pytest.approx(first.at_ms + 20_000, abs=1)
    assert float(client.hget(limiter.key(dep), "rtat") or 0) == pytest.approx(
        first.at_ms + 10_000, abs=1
    )
    # When a caller whose place has not come asks again; Then it keeps that place
    again = limiter.acquire(dep, 1, horizon_s=2.5, place_ms=third.at_ms, place_epoch=third.epoch)
    assert not again.granted and again.at_ms == pytest.approx(third.at_ms, abs=1)
    # When the second caller's turn comes (a horizon reaching it stands in for the
    # time passing); Then it has exactly the slot after the first: nobody used it
    turn = limiter.acquire(dep, 1, horizon_s=30, place_ms=second.at_ms, place_epoch=second.epoch)
    assert turn.granted and turn.at_ms == pytest.approx(second.at_ms, abs=1)
    # When a caller comes back long after its place; Then it takes the next free slot
    late = limiter.acquire(
        dep, 1, horizon_s=30, place_ms=first.at_ms - 60_000, place_epoch=first.epoch
    )
    assert late.granted and late.at_ms == pytest.approx(first.at_ms + 20_000, abs=1)
    # When a new caller comes; Then its place is after everyone already in line
    newcomer = limiter.acquire(dep, 1, horizon_s=2.5)
    assert not newcomer.granted
    assert newcomer.at_ms == pytest.approx(first.at_ms + 30_000, abs=1)


def test_a_slot_nobody_in_line_is_there_for_goes_to_whoever_asks(
    client: redis.Redis, prefix: str
) -> None:
    limiter = RateLimiter(client, prefix=prefix, headroom=0.0, eager_s=0.5)
    dep = deployment(rpm=6)
    limiter.acquire(dep, 1, horizon_s=2.5)
    waiting = limiter.acquire(dep, 1, horizon_s=2.5)
    assert not waiting.granted
    # Given the limiter's state lost (Redis restarted empty): places given before are void
    client.delete(limiter.key(dep))
    void = limiter.acquire(dep, 1, horizon_s=2.5, place_ms=waiting.at_ms, place_epoch="old")
    assert void.granted and void.delay_s == 0 and void.epoch != waiting.epoch
    # When a caller whose place is 20 s away asks while the next slot is 10 s away
    far = limiter.acquire(dep, 1, horizon_s=2.5)
    assert not far.granted
    early = limiter.acquire(
        dep, 1, horizon_s=2.5, place_ms=far.at_ms + 10_000, place_epoch=far.epoch
    )
    # Then it waits for its place
    assert not early.granted and early.at_ms == pytest.approx(far.at_ms + 10_000, abs=1)
    # When the next slot is free now (nobody came back for it)
    client.hset(limiter.key(dep), "rtat", "0")
    eager = limiter.acquire(
        dep, 1, horizon_s=2.5, place_ms=far.at_ms + 10_000, place_epoch=far.epoch
    )
    # Then the caller in hand takes it rather than let it go unused
    assert eager.granted and eager.delay_s == 0


def test_tokens_are_reserved_then_settled_with_real_usage(client: redis.Redis, prefix: str) -> None:
    # Given 6,000 tokens a minute (100 a second) and calls reserving 1,000 tokens
    limiter = RateLimiter(client, prefix=prefix, headroom=0.0)
    dep = deployment(tpm=6000)
    limiter.acquire(dep, 1000, horizon_s=60)
    # When the call used only 100; Then the next call waits for 100 tokens' worth, not 1,000
    # (the waiting line moves up too: the next caller's turn is within 2.5 s, not 10 s)
    limiter.settle(dep, reserved=1000, used=100, outcome="ok")
    after = limiter.acquire(dep, 1000, horizon_s=2.5)
    assert after.granted and 0.9 < after.delay_s <= 1.0


def test_a_429_slows_every_caller_down(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix=prefix, headroom=0.0)
    dep = deployment(rpm=600)  # 100 ms apart
    limiter.acquire(dep, 1, horizon_s=10)
    limiter.settle(dep, reserved=1, used=1, outcome="throttled")
    first, second = limiter.acquire(dep, 1, horizon_s=10), limiter.acquire(dep, 1, horizon_s=10)
    # Then the spacing grew by the 0.9 scale: 100 ms / 0.9
    assert second.at_ms - first.at_ms == pytest.approx(111.1, abs=0.5)


def test_breaker_opens_on_failures_lets_one_probe_through_and_closes_on_success(
    client: redis.Redis, prefix: str
) -> None:
    policy = BreakerPolicy(min_calls=4, failure_ratio=0.5, open_s=30)
    breaker = CircuitBreaker(client, prefix=prefix, policy=policy)
    dep = deployment()
    # Given two answers and two failures; Then the breaker opens
    states = [breaker.record(dep, ok=ok) for ok in (True, False, True, False)]
    assert states == ["closed", "closed", "closed", "open"]
    decision, retry_in_s = breaker.allow(dep)
    assert decision is Decision.DENY and 29 < retry_in_s <= 30
    # When its cool-down is over; Then exactly one caller becomes the probe
    client.hset(breaker.key(dep), "until", 0)
    assert [breaker.allow(dep)[0] for _ in range(3)] == [
        Decision.PROBE,
        Decision.DENY,
        Decision.DENY,
    ]
    # When the probe fails; Then it opens again, for longer
    assert breaker.record(dep, ok=False) == "open"
    assert 59 < breaker.allow(dep)[1] <= 60
    # When the next probe answers; Then it closes
    client.hset(breaker.key(dep), "until", 0)
    assert breaker.allow(dep)[0] is Decision.PROBE
    assert breaker.record(dep, ok=True) == "closed"
    assert breaker.allow(dep)[0] is Decision.ALLOW


def test_a_closed_breaker_is_read_once_for_calls_close_together(
    client: redis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(breaker_module, "CLOSED_FRESH_S", 60.0)  # every call "close together"
    policy = BreakerPolicy(min_calls=4, failure_ratio=0.5, open_s=30)
    mine = CircuitBreaker(client, prefix=prefix, policy=policy)
    other = CircuitBreaker(client, prefix=prefix, policy=policy)  # another worker process
    dep = deployment()
    # Given this process read the breaker closed
    assert mine.allow(dep)[0] is Decision.ALLOW
    # When another process opens it; Then this process's next call still goes (read stale)
    other.trip(dep, for_s=30)
    assert mine.allow(dep)[0] is Decision.ALLOW
    # When this process's own answer comes back to an open breaker; Then it forgets the
    # closed reading at once and is refused from the next call on
    assert mine.record(dep, ok=False) == "open"
    decision, retry_in_s = mine.allow(dep)
    assert decision is Decision.DENY and 29 < retry_in_s <= 30


def _at_once(
    breaker: CircuitBreaker, dep: Deployment, threads: int
) -> tuple[list[tuple[Decision, float]], int]:
    """``threads`` threads ask ``allow`` while the first read to Redis is held back 0.3 s:
    what each was told, and how many reads went to Redis."""
    reads: list[object] = []
    real = breaker._allow.call

    def counted(keys: list[str], args: list[Any]) -> Any:
        reads.append(keys)
        if len(reads) == 1:
            time.sleep(0.3)  # the others arrive while it is in flight
        return real(keys, args)

    breaker._allow.call = counted  # type: ignore[method-assign]
    told: list[tuple[Decision, float]] = []
    workers = [
        threading.Thread(target=lambda: told.append(breaker.allow(dep))) for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return told, len(reads)


def test_calls_at_the_same_moment_share_one_read_of_a_closed_breaker(
    client: redis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a closed breaker that nobody has read yet
    monkeypatch.setattr(breaker_module, "CLOSED_FRESH_S", 60.0)
    breaker = CircuitBreaker(client, prefix=prefix, policy=BreakerPolicy())
    # When 16 threads ask at once (a batch message's jobs starting together)
    told, reads = _at_once(breaker, deployment(), 16)
    # Then all may call, and Redis was read once
    assert [d for d, _ in told] == [Decision.ALLOW] * 16
    assert reads == 1


def test_an_interactive_call_reads_the_breaker_itself_not_waiting_on_a_batch_read(
    client: redis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch thread whose read of a closed breaker is held until released
    monkeypatch.setattr(breaker_module, "CLOSED_FRESH_S", 60.0)
    breaker = CircuitBreaker(client, prefix=prefix, policy=BreakerPolicy())
    dep = deployment()
    real, held, release = breaker._allow.call, threading.Event(), threading.Event()

    def held_for_batch(keys: list[str], args: list[Any]) -> Any:
        if not is_alone():
            held.set()
            release.wait(10)
        return real(keys, args)

    breaker._allow.call = held_for_batch  # type: ignore[method-assign]
    batch = threading.Thread(target=breaker.allow, args=(dep,))
    batch.start()
    assert held.wait(5)
    # When an interactive job's call (alone) asks while that read is held
    told: list[tuple[Decision, float]] = []

    def interactive() -> None:
        with alone():
            told.append(breaker.allow(dep))

    caller = threading.Thread(target=interactive)
    caller.start()
    caller.join(5)
    finished_first = not caller.is_alive()
    release.set()
    batch.join(10)
    caller.join(10)
    # Then it read Redis itself and was answered before the batch thread's read ended
    assert finished_first
    assert [d for d, _ in told] == [Decision.ALLOW]


def test_calls_at_the_same_moment_to_a_cooled_open_breaker_get_one_probe(
    client: redis.Redis, prefix: str
) -> None:
    # Given an open breaker whose cool-down is over
    breaker = CircuitBreaker(client, prefix=prefix, policy=BreakerPolicy())
    dep = deployment()
    breaker.trip(dep, for_s=30)
    client.hset(breaker.key(dep), "until", 0)
    # When 8 threads ask at once
    told, reads = _at_once(breaker, dep, 8)
    # Then one is the probe and the others are refused (the probe is not shared)
    decisions = sorted(d for d, _ in told)
    assert decisions == [Decision.DENY] * 7 + [Decision.PROBE], told
    assert reads == 8


def test_retry_delays_back_off_with_jitter_and_honour_retry_after() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=8)
    rng = random.Random(7)
    for tries, (low, high) in {1: (0.25, 0.5), 2: (0.5, 1), 3: (1, 2), 10: (4, 8)}.items():
        delays = [policy.delay_s(tries, None, rng) for _ in range(200)]
        assert low <= min(delays) and max(delays) <= high
    assert 20 <= policy.delay_s(1, 20.0, rng) <= 22
