"""Streaming through the official ``openai`` SDK when the first deployment breaks.

A running cluster (simulator, API, one worker per tier); the simulator is told
to fail ``gpt-4o-mini`` (the fast tier's cheaper deployment) in one of two ways,
and the SDK streams a chat completion that falls back to ``gpt-4.1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import redis
from openai import OpenAI

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
MESSAGES: Any = [{"role": "user", "content": "List three rivers of South America."}]


@pytest.fixture
def sdk(cluster: Cluster) -> Iterator[OpenAI]:
    client = OpenAI(base_url=f"{cluster.api_url}/v1", api_key=cluster.api_key, max_retries=0)
    yield client
    client.close()


@contextmanager
def mini_fails(cluster: Cluster, kind: str) -> Iterator[None]:
    """``gpt-4o-mini`` fails every call with ``kind`` for a while; its breaker is reset after."""
    sim = f"http://127.0.0.1:{cluster.settings.simulator_port}/_sim/config"
    before = httpx.get(sim).json()
    broken = {"error_rates": {kind: 1.0}, "latency_p50_ms": 300, "latency_p99_ms": 300}
    httpx.put(sim, json={**before, "models": {**before["models"], "gpt-4o-mini": broken}})
    try:
        yield
    finally:
        httpx.put(sim, json=before).raise_for_status()
        client = redis.Redis.from_url(cluster.settings.effective_redis_url)
        client.delete(f"{cluster.settings.redis_key_prefix}switchyard:breaker:sim-gpt-4o-mini")
        client.close()


def job(cluster: Cluster, job_id: str) -> Any:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    return httpx.get(f"{cluster.api_url}/v1/jobs/{job_id}", headers=headers).json()


def stream(sdk: OpenAI) -> Any:
    return sdk.chat.completions.create(
        model="tier:fast", messages=MESSAGES, stream=True, extra_body={"quality": 0}
    )


def test_a_failure_before_the_first_token_streams_the_fallback_seamlessly(
    cluster: Cluster, sdk: OpenAI
) -> None:
    # Given gpt-4o-mini answering 500 at once, every time
    with mini_fails(cluster, "500"):
        # When a chat completion is streamed
        chunks = list(stream(sdk))
    # Then the client got exactly the answer of the deployment that took over
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    facts = chunks[-1].model_extra["switchyard"]
    assert facts["deployment"] == "sim-gpt-4.1"
    assert text and text == job(cluster, facts["job_id"])["output"]


def test_a_failure_mid_answer_ends_the_stream_with_an_error_not_a_spliced_answer(
    cluster: Cluster, sdk: OpenAI
) -> None:
    # Given gpt-4o-mini whose streams break halfway, every time
    received: list[str] = []
    with mini_fails(cluster, "malformed"), pytest.raises(openai.APIError) as caught:
        # When a chat completion is streamed
        for c in stream(sdk):
            received.append((c.choices[0].delta.content or "") if c.choices else "")
    # Then the client got half an answer, then an error naming the job
    assert "stream_interrupted" in str(caught.value.body) or "interrupted" in caught.value.message
    found = re.search(r"job (job_\w+)", caught.value.message)
    assert found, caught.value.message
    # And the job itself finished on the fallback, whose answer the client never got a piece of
    done = job(cluster, found.group(1))
    assert done["status"] == "succeeded" and done["deployment"] == "sim-gpt-4.1"
    sent = "".join(received)
    assert sent and not done["output"].startswith(sent)
    assert done["output"][:40] not in sent
