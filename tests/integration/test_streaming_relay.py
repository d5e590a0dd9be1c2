"""Token streaming from the worker to the API through Redis, on a real Redis and database.

The worker side (``workers.streaming``) runs inside a real ``Runtime`` whose
provider is faked at its HTTP edge with event streams; the API side
(``orchestrator.api.chat_stream``) reads the same Redis stream and job row.
The fallback policy is checked end to end: what the client receives always
adds up to the job's answer, or ends with an error that says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from orchestrator.api.chat_stream import ChatStream
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.jobs.completion_events import stream_key
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Job
from tests.integration.test_attempt_loop import FAST_PLAN, Harness
from workers import streaming
from workers.execute import Outcome
from workers.streaming import STREAM_TTL_S, DeltaPublisher, StreamRelay

pytestmark = pytest.mark.integration
STREAMED = JobRequest(prompt="Hello?", max_tokens=50, stream=True).model_dump(mode="json")


def openai_stream(words: list[str], *, finished: bool = True) -> bytes:
    """An OpenAI chat-completions event stream saying ``words`` (cut before its end unless
    ``finished``)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({'model': 'm', 'choices': [choice]})}\n\n"

    body = chunk({"role": "assistant", "content": ""}) + "".join(
        chunk({"content": w}) for w in words
    )
    if finished:
        body += chunk({}, "stop") + "data: [DONE]\n\n"
    return body.encode()


def by_model(streams: dict[str, bytes]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        return httpx.Response(
            200, content=streams[model], headers={"content-type": "text/event-stream"}
        )

    return handler


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def entries(client: redis.Redis, key: str) -> list[tuple[str, str]]:
    return [
        (
            fields[b"kind"].decode(),
            (fields.get(b"text") or fields.get(b"deployment") or b"").decode(),
        )
        for _, fields in client.xrange(key)
    ]


def harness(
    database_url: str, redis_url: str, key_prefix: str, streams: dict[str, bytes]
) -> Harness:
    h = Harness(database_url, by_model(streams))
    settings = Settings(database_url=database_url, redis_url=redis_url, redis_key_prefix=key_prefix)
    h.runtime.relay = StreamRelay(settings, redis.Redis.from_url(redis_url))
    return h


def relay_to_client(database_url: str, redis_url: str, key_prefix: str, job_id: str) -> list[Any]:
    """What the API sends a client for ``job_id``: decoded ``data:`` payloads, in order."""
    settings = Settings(
        database_url=database_url, redis_url=redis_url, redis_key_prefix=key_prefix,
        chat_timeout_s=10,
    )  # fmt: skip

    async def collect() -> list[bytes]:
        aclient = aioredis.Redis.from_url(redis_url)
        state: Any = SimpleNamespace(
            settings=settings, engine=get_engine(database_url), aredis=aclient
        )
        with session_scope(state.engine) as session:
            job = session.get(Job, job_id)
        assert job is not None
        stream = ChatStream(state, job.tenant_id, job, True)
        try:
            return [piece async for piece in stream.events()]
        finally:
            await aclient.aclose()

    pieces = asyncio.run(collect())
    return [
        p.decode()[6:].strip() if p.decode()[6:].strip() == "[DONE]" else json.loads(p.decode()[6:])
        for p in pieces
        if p.startswith(b"data: ")
    ]


def content(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


def test_publisher_coalesces_deltas_and_sets_a_ttl(client: redis.Redis, key_prefix: str) -> None:
    # Given a publisher whose clock we move by hand
    now = [0.0]
    key = f"{key_prefix}test:coalesce"
    publisher = DeltaPublisher(client, key, clock=lambda: now[0])
    # When an attempt sends five pieces, two of them after the flush interval
    publisher.begin("dep-a")
    for piece, at in (("a", 0.0), ("b", 0.001), ("c", 0.05), ("d", 0.051), ("e", 0.2)):
        now[0] = at
        publisher.delta(piece)
    publisher.finish()
    # Then pieces that came together were written together, in order, then the end marker
    assert entries(client, key) == [
        ("attempt", "dep-a"),
        ("delta", "abc"),
        ("delta", "de"),
        ("end", ""),
    ]
    assert 0 < client.ttl(key) <= STREAM_TTL_S


def test_a_dead_redis_never_fails_the_call() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    publisher = DeltaPublisher(dead, "k")
    publisher.begin("dep")
    publisher.delta("text")
    publisher.finish()
    assert publisher.broken


def test_a_streamed_job_relays_its_tokens_and_the_client_gets_the_answer(
    database_url: str, redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    # Given a streaming job whose provider streams four words
    words = ["Paris", " is", " the", " capital"]
    h = harness(database_url, redis_url, key_prefix, {"gpt-4o-mini": openai_stream(words)})
    job_id = h.add_job(request=STREAMED)
    # When the worker runs it
    assert h.runtime.execute(job_id) is Outcome.SUCCEEDED
    # Then the job's Redis stream holds the attempt, its text and the end marker
    key = stream_key(key_prefix, job_id)
    got = entries(client, key)
    assert got[0] == ("attempt", "sim-gpt-4o-mini") and got[-1] == ("end", "")
    assert "".join(t for k, t in got if k == "delta") == "Paris is the capital"
    # And the client gets it as chunks, then the finish, the usage and [DONE]
    events = relay_to_client(database_url, redis_url, key_prefix, job_id)
    assert content(events) == h.job(job_id).output == "Paris is the capital"
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] > 0
    assert events[-3]["choices"][0]["finish_reason"] == "stop"


def test_lost_events_are_finished_from_the_job_row(
    database_url: str, redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    # Given a finished streaming job whose Redis stream lost everything after one delta
    words = ["One", " two", " three"]
    h = harness(database_url, redis_url, key_prefix, {"gpt-4o-mini": openai_stream(words)})
    job_id = h.add_job(request=STREAMED)
    assert h.runtime.execute(job_id) is Outcome.SUCCEEDED
    key = stream_key(key_prefix, job_id)
    client.delete(key)
    client.xadd(key, {"kind": "attempt", "deployment": "sim-gpt-4o-mini"})
    client.xadd(key, {"kind": "delta", "text": "One"})
    # When a client streams it; Then the rest comes from the row, and nothing twice
    events = relay_to_client(database_url, redis_url, key_prefix, job_id)
    assert content(events) == "One two three" and events[-1] == "[DONE]"


def test_a_fallback_before_the_first_token_is_seamless(
    database_url: str, redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    # Given a first deployment that refuses at once (no token sent), and a second that answers
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == "gpt-4o-mini":
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, content=openai_stream(["Fine", " answer"]))

    h = harness(database_url, redis_url, key_prefix, {})
    h.runtime.http = httpx.Client(transport=httpx.MockTransport(handler))
    job_id = h.add_job(request=STREAMED)
    assert h.runtime.execute(job_id) is Outcome.SUCCEEDED
    # Then the client sees exactly the second deployment's answer
    events = relay_to_client(database_url, redis_url, key_prefix, job_id)
    assert content(events) == "Fine answer" and events[-1] == "[DONE]"
    assert h.job(job_id).deployment == FAST_PLAN[1]


def test_a_fallback_mid_answer_never_splices_two_answers(
    database_url: str,
    redis_url: str,
    key_prefix: str,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a first deployment whose stream breaks after some text, and a second that answers
    monkeypatch.setattr(streaming, "FLUSH_S", 0.0)  # every piece is written at once
    streams = {
        "gpt-4o-mini": openai_stream(["Half", " an"], finished=False),
        "gpt-4.1": openai_stream(["Whole", " answer"]),
    }
    h = harness(database_url, redis_url, key_prefix, streams)
    job_id = h.add_job(request=STREAMED)
    assert h.runtime.execute(job_id) is Outcome.SUCCEEDED
    assert h.job(job_id).output == "Whole answer"
    # Then the Redis stream shows the broken attempts, each marked, and the one that answered
    kinds = entries(client, stream_key(key_prefix, job_id))
    assert [t for k, t in kinds if k == "attempt"] == [FAST_PLAN[0]] * 3 + [FAST_PLAN[1]]
    # And the client got the broken text once, then an error naming the job, never "Whole"
    events = relay_to_client(database_url, redis_url, key_prefix, job_id)
    assert content(events) == "Half an"
    error = events[-2]["error"]
    assert error["code"] == "stream_interrupted" and job_id in error["message"]
    assert events[-1] == "[DONE]"


def test_a_retry_that_repeats_the_same_text_goes_on_without_a_seam(
    database_url: str,
    redis_url: str,
    key_prefix: str,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a deployment whose first stream breaks and whose retry says the same thing whole
    monkeypatch.setattr(streaming, "FLUSH_S", 0.0)
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        body = openai_stream(["Same", " words", " here"], finished=len(calls) > 1)
        return httpx.Response(200, content=body)

    h = harness(database_url, redis_url, key_prefix, {})
    h.runtime.http = httpx.Client(transport=httpx.MockTransport(handler))
    job_id = h.add_job(request=STREAMED)
    assert h.runtime.execute(job_id) is Outcome.SUCCEEDED
    # Then the client gets the answer once: what it already had is a prefix of the answer
    events = relay_to_client(database_url, redis_url, key_prefix, job_id)
    assert content(events) == "Same words here" and events[-1] == "[DONE]"
