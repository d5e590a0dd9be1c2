"""Script calls from many threads share pipelines, and each gets its own call's answer."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from orchestrator.core.batching import ScriptBatcher

pytestmark = pytest.mark.integration

INCR_AND_ECHO = "return {redis.call('INCRBY', KEYS[1], ARGV[1]), ARGV[2]}"


def test_each_thread_gets_the_answer_to_its_own_call(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    batcher = ScriptBatcher(client, INCR_AND_ECHO)
    key = f"{key_prefix}batcher"
    # When 40 threads each add their number and echo a tag, 200 calls in all
    with ThreadPoolExecutor(40) as pool:
        answers = list(
            pool.map(lambda n: (n, batcher.call([key], [n % 7, f"tag-{n}"])), range(200))
        )
    # Then every call saw its own tag, the counter moved by the sum, and no two calls
    # saw the same running total (each call ran once, in some order)
    assert all(echo == f"tag-{n}".encode() for n, (_, echo) in answers)
    assert int(client.get(key) or 0) == sum(n % 7 for n in range(200))
    assert len({total for _, (total, _) in answers if True}) >= len(
        {n for n in range(200) if n % 7}
    )


def test_a_redis_error_reaches_the_caller(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    batcher = ScriptBatcher(client, "return redis.call('INCR', KEYS[1])")
    key = f"{key_prefix}not-a-number"
    client.set(key, "abc")
    with pytest.raises(redis.ResponseError):
        batcher.call([key], [])


def test_a_script_redis_forgot_is_loaded_again(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    batcher = ScriptBatcher(client, "return 'forgotten-' .. ARGV[1]")
    assert batcher.call([f"{key_prefix}k"], ["a"]) == b"forgotten-a"
    client.script_flush()  # as a Redis restarted empty would
    assert batcher.call([f"{key_prefix}k"], ["b"]) == b"forgotten-b"


def test_sent_calls_arrive_shortly_without_anyone_waiting(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    batcher = ScriptBatcher(client, INCR_AND_ECHO, max_batch=16)
    key = f"{key_prefix}sent"
    # When 40 threads send 200 calls and nobody waits for their answers
    with ThreadPoolExecutor(40) as pool:
        list(pool.map(lambda n: batcher.send([key], [n % 7, "x"]), range(200)))
    # Then the background sender delivers every one of them, each once, shortly
    deadline = time.monotonic() + 5
    while int(client.get(key) or 0) < sum(n % 7 for n in range(200)):
        assert time.monotonic() < deadline, "sent calls did not arrive"
        time.sleep(0.01)
    assert int(client.get(key) or 0) == sum(n % 7 for n in range(200))
    # And flush sends what is waiting at once, in the caller's thread
    batcher.send([key], [1000, "x"])
    batcher.flush()
    assert int(client.get(key) or 0) == sum(n % 7 for n in range(200)) + 1000
