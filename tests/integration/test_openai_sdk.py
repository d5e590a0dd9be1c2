"""The official ``openai`` SDK works unchanged against a running Switchyard."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from openai import OpenAI

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

PROMPTS = [
    "What is the capital of Peru?",
    "Solve step by step: if 3x + 7 = 22, what is x? Explain why.",
    "Write a Python function that reverses a linked list.",
    "Write a haiku about trains.",
]
MALFORMED = {
    17: '{"custom_id": "req-17", "method": "POST", "url": "/v1/chat/completions", "body": {',
    250: json.dumps(
        {
            "custom_id": "req-250",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "auto"},
        }
    ),
    499: json.dumps(
        {
            "custom_id": "req-499",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        }
    ),
}


@pytest.fixture
def sdk(cluster: Cluster) -> Iterator[OpenAI]:
    client = OpenAI(base_url=f"{cluster.api_url}/v1", api_key=cluster.api_key, max_retries=0)
    yield client
    client.close()


def batch_file(lines: int) -> bytes:
    out = []
    for i in range(lines):
        if i in MALFORMED:
            out.append(MALFORMED[i])
            continue
        body = {
            "model": "auto",
            "messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} (#{i})"}],
            "max_tokens": 64,
        }
        line = {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body,
        }
        out.append(json.dumps(line))
    return ("\n".join(out) + "\n").encode()


def test_chat_completion_plain_and_streaming(cluster: Cluster, sdk: OpenAI) -> None:
    # Given a running Switchyard and the official SDK pointed at it
    messages = [{"role": "user", "content": "Name three primary colours."}]
    # When a chat completion is created, plain
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=messages)
    completion = raw.parse()
    # Then it is OpenAI's shape, and the headers say where it went and what it cost
    text = completion.choices[0].message.content
    assert text and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-switchyard-tier"] == "fast"
    assert raw.headers["x-switchyard-deployment"]
    assert int(raw.headers["x-switchyard-cost-micro-usd"]) > 0
    # When the same request is streamed, from a provider whose answer takes 2 s (its first
    # token after 0.4 s, the rest spread over 1.6 s)
    with slow_fast_tier(cluster, 2000):
        started = time.monotonic()
        stream = sdk.chat.completions.create(
            model="auto", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks, arrivals = [], []
        for c in stream:
            chunks.append(c)
            if c.choices and c.choices[0].delta.content:
                arrivals.append(time.monotonic() - started)
        total_s = time.monotonic() - started
    # Then the chunks add up to the same (deterministic) answer, and the last carries usage
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    # And the text came token by token as the provider produced it, not all at the end
    print(f"streamed: {len(arrivals)} content chunks, first {arrivals[0]:.3f}s of {total_s:.3f}s")
    assert len(arrivals) > 5, arrivals
    assert total_s > 1.8
    assert arrivals[0] < 0.5 * total_s, (arrivals[0], total_s)
    assert arrivals[-1] - arrivals[0] > 1.0, (arrivals[0], arrivals[-1], total_s)


def test_models_tiers_and_errors(sdk: OpenAI) -> None:
    # The model list offers auto, each tier and the catalog's models
    ids = {m.id for m in sdk.models.list()}
    assert {"auto", "tier:fast", "tier:reasoning", "tier:vision", "tier:code"} <= ids
    assert "gpt-4o-mini" in ids
    # A tier can be forced by name
    raw = sdk.chat.completions.with_raw_response.create(
        model="tier:code", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-switchyard-tier"] == "code"
    # An unknown model is refused in OpenAI's error shape, naming the parameter
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "model" and error["message"]


def test_batch_api_500_lines_three_malformed(sdk: OpenAI) -> None:
    # Given a 500-line input file with 3 malformed lines, uploaded through the Files API
    uploaded = sdk.files.create(file=("input.jsonl", batch_file(500)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    # When a batch is created from it and polled until it is done
    batch = sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"suite": "openai-sdk"},
    )
    assert batch.status == "in_progress" and batch.input_file_id == uploaded.id
    deadline = time.monotonic() + 180
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.5)
        batch = sdk.batches.retrieve(batch.id)
    # Then it completed with 497 answers and 3 errors, matched to the inputs by custom_id
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (500, 497)
    assert batch.request_counts.failed == 3
    assert (
        batch.output_file_id and batch.error_file_id and batch.metadata == {"suite": "openai-sdk"}
    )
    outputs = [json.loads(x) for x in sdk.files.content(batch.output_file_id).text.splitlines()]
    errors = [json.loads(x) for x in sdk.files.content(batch.error_file_id).text.splitlines()]
    expected = {f"req-{i}" for i in range(500)} - {f"req-{i}" for i in MALFORMED}
    assert {o["custom_id"] for o in outputs} == expected and len(outputs) == 497
    assert all(o["response"]["status_code"] == 200 for o in outputs)
    assert all(o["response"]["body"]["choices"][0]["message"]["content"] for o in outputs)
    assert [e["custom_id"] for e in errors] == ["req-17", "req-250", "req-499"]
    assert all(e["error"]["message"] for e in errors)
    # And the batch is listed, and its output file is described by the Files API
    assert batch.id in {b.id for b in sdk.batches.list(limit=100)}
    assert sdk.files.retrieve(batch.output_file_id).purpose == "batch_output"


@contextmanager
def slow_fast_tier(cluster: Cluster, latency_ms: float) -> Iterator[None]:
    """The fast tier's models answer after ``latency_ms`` at the simulator, for a while."""
    sim = f"http://127.0.0.1:{cluster.settings.simulator_port}/_sim/config"
    before = httpx.get(sim).json()
    slow = {"latency_p50_ms": latency_ms, "latency_p99_ms": latency_ms}
    models = {**before.get("models", {}), "gpt-4o-mini": slow, "gpt-4.1": slow}
    httpx.put(sim, json={**before, "models": models}).raise_for_status()
    try:
        yield
    finally:
        httpx.put(sim, json=before).raise_for_status()


def test_cancel_a_batch_through_the_sdk(cluster: Cluster, sdk: OpenAI) -> None:
    # Given a batch whose calls take a second each, so most of it is still waiting
    body = {"model": "tier:fast", "messages": [{"role": "user", "content": "wait"}]}
    lines = [
        json.dumps(
            {"custom_id": f"c-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
        for i in range(200)
    ]
    uploaded = sdk.files.create(file=("c.jsonl", "\n".join(lines).encode()), purpose="batch")
    with slow_fast_tier(cluster, 1000):
        batch = sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        # When it is cancelled
        cancelled = sdk.batches.cancel(batch.id)
        assert cancelled.status in ("cancelling", "cancelled")
        # Then it becomes cancelled once the calls in flight end, every request accounted for
        deadline = time.monotonic() + 60
        while cancelled.status == "cancelling":
            assert time.monotonic() < deadline
            time.sleep(0.3)
            cancelled = sdk.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    counts = cancelled.request_counts
    assert counts is not None and counts.total == 200 and counts.failed > 100
    assert counts.completed + counts.failed == 200
    # And cancelling it again is refused: it is finished
    with pytest.raises(openai.ConflictError):
        sdk.batches.cancel(batch.id)
