"""The simulator streams in each provider's own format, and the official SDKs parse it.

OpenAI (``stream: true``), Anthropic (``stream: true``) and Gemini
(``:streamGenerateContent?alt=sse``) over real HTTP; the streamed answer is the
same deterministic answer as the plain one, and its tokens are paced over the
configured latency.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.unit.test_simulator_sdks import HELLO, WEATHER, configure

GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]}


@pytest.fixture
def oai(fresh_simulator: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{fresh_simulator}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def claude(fresh_simulator: str) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=fresh_simulator, api_key="sk-ant-test", max_retries=0)
    yield client
    client.close()


def test_openai_sdk_streams_the_same_answer_with_a_usage_chunk(oai: openai.OpenAI) -> None:
    # Given the plain answer to a prompt
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # When the same prompt is streamed with include_usage
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # Then the first chunk names the role, the content chunks add up to the plain answer,
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 10 and "".join(pieces) == plain.choices[0].message.content
    # the finish comes before the usage chunk, which has no choices and the same usage
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_sdk_streams_a_tool_call_in_pieces(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        tools=[{"type": "function", "function": WEATHER}],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for c in stream:
        for piece in c.choices[0].delta.tool_calls or ():
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += piece.id or ""
            call["name"] += (piece.function and piece.function.name) or ""
            call["arguments"] += (piece.function and piece.function.arguments) or ""
        finish = c.choices[0].finish_reason or finish
    assert finish == "tool_calls" and len(calls) == 1
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "example", "days": 1}


def test_stream_options_without_stream_is_refused(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream_options={"include_usage": True}
        )
    assert caught.value.param == "stream_options"


def test_tokens_are_paced_over_the_latency(oai: openai.OpenAI, fresh_simulator: str) -> None:
    # Given answers that take 600 ms
    configure(fresh_simulator, {"default": {"latency_p50_ms": 600, "latency_p99_ms": 600}})
    # When one is streamed
    started = time.monotonic()
    arrivals = [
        time.monotonic() - started
        for c in oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    total_s = time.monotonic() - started
    # Then the first token comes early and the rest are spread over the latency
    assert 0.55 <= total_s < 2.0
    assert arrivals[0] < 0.4 * total_s
    assert arrivals[len(arrivals) // 2] - arrivals[0] > 0.2


def test_a_malformed_stream_is_cut_off_before_its_end(fresh_simulator: str) -> None:
    configure(fresh_simulator, {"default": {"error_rates": {"malformed": 1.0}}})
    body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": True}
    text = httpx.post(f"{fresh_simulator}/v1/chat/completions", json=body).text
    assert (
        text.startswith("data: ") and "[DONE]" not in text and '"finish_reason":"stop"' not in text
    )


def test_anthropic_sdk_streams_the_same_message(claude: anthropic.Anthropic) -> None:
    # Given the plain answer
    plain = claude.messages.create(model="claude-sonnet-4", max_tokens=1000, messages=HELLO)
    # When the same request is streamed through the SDK's stream helper
    with claude.messages.stream(model="claude-sonnet-4", max_tokens=1000, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    # Then the text arrives in pieces that add up to the plain answer, with the same usage
    assert len(pieces) > 10
    assert "".join(pieces) == plain.content[0].text  # type: ignore[union-attr]
    assert (
        final.stop_reason == "end_turn" and final.usage.output_tokens == plain.usage.output_tokens
    )
    assert final.usage.input_tokens == plain.usage.input_tokens


def test_anthropic_sdk_streams_a_tool_use(claude: anthropic.Anthropic) -> None:
    tool = {"name": "get_weather", "input_schema": WEATHER["parameters"]}
    with claude.messages.stream(
        model="claude-sonnet-4",
        max_tokens=500,
        messages=HELLO,
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    [block] = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "get_weather" and block.input == {"city": "example", "days": 1}


def _gemini_events(root: str, path: str) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{root}{path}", json=GEMINI_BODY) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert "\r\n\r\n" in raw
    return [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]


def test_gemini_streams_generate_content_over_sse(fresh_simulator: str) -> None:
    model = "/v1beta/models/gemini-2.0-flash"
    plain = httpx.post(f"{fresh_simulator}{model}:generateContent", json=GEMINI_BODY).json()
    events = _gemini_events(fresh_simulator, f"{model}:streamGenerateContent?alt=sse")
    texts = [p["text"] for e in events for p in e["candidates"][0]["content"]["parts"]]
    assert len(events) > 3
    assert "".join(texts) == plain["candidates"][0]["content"]["parts"][0]["text"]
    assert [e["candidates"][0].get("finishReason") for e in events][-1] == "STOP"
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["usageMetadata"] == plain["usageMetadata"]


def test_gemini_stream_needs_alt_sse(fresh_simulator: str) -> None:
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    response = httpx.post(f"{fresh_simulator}{path}", json=GEMINI_BODY)
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"
