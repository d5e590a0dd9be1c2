"""Live statistics in Redis (``orchestrator.routing.live_stats``): what the workers fold in."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator

import pytest
import redis

from orchestrator.routing.live_stats import LiveStats

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def folded(samples: list[tuple[int, float, float | None]], alpha: float) -> dict[str, float]:
    """The moving moments after ``samples`` (output tokens, latency, ttft), one at a time."""
    moments: dict[str, float] = {}
    n = 0
    for x, y, ttft in samples:
        for name, value in (("x", x), ("y", y), ("xx", x * x), ("xy", x * y)):
            old = moments.get(name)
            moments[name] = value if n == 0 or old is None else old + alpha * (value - old)
        moments["err"] = 0.0 if "err" not in moments else moments["err"] * (1 - alpha)
        if ttft is not None:
            old = moments.get("ttft")
            moments["ttft"] = ttft if old is None else old + alpha * (ttft - old)
        n += 1
    return moments | {"n": n}


def test_calls_recorded_together_fold_in_one_by_one_in_their_order(
    client: redis.Redis, key_prefix: str
) -> None:
    # Given a deployment's 120 answered calls, some streamed (with a time to first token),
    # recorded in three bursts, each sent as one script call
    stats = LiveStats(client, prefix=f"{key_prefix}live-{secrets.token_hex(4)}:", alpha=0.1)
    rng = random.Random(3)
    samples = [
        (rng.randint(1, 400), rng.uniform(50, 3000), rng.choice([None, rng.uniform(20, 300)]))
        for _ in range(120)
    ]
    for burst in (samples[:1], samples[1:70], samples[70:]):
        for x, y, ttft in burst:
            stats.record_success("dep-a", latency_ms=y, output_tokens=x, ttft_ms=ttft)
        stats.flush()
    # When the hash is read; Then it holds what folding them one at a time gives
    stored = {k.decode(): float(v) for k, v in client.hgetall(stats.key("dep-a")).items()}
    expected = folded(samples, 0.1)
    assert stored.keys() == expected.keys()
    for name, value in expected.items():
        assert stored[name] == pytest.approx(value, rel=1e-9), name
    # and the model read from it is the same as any reader's
    assert stats.read(["dep-a"])["dep-a"].samples == 120
