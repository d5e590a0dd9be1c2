"""Each adapter's streaming path: the providers' documented event streams, and the simulator's.

The provider's HTTP edge is faked with ``httpx.MockTransport`` answering event
streams written the way OpenAI, Anthropic and Gemini document them, or is the
simulator over real HTTP; the SSE decoding, the per-format parsers, the error
tree and the final ``Completion`` are real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.core.schemas import JobRequest
from tests.unit.test_adapters_wire import WEATHER_TOOL, deployment
from workers.providers import (
    ADAPTERS,
    ConnectionFailed,
    Overloaded,
    RateLimited,
    ServerError,
)
from workers.providers.sse import Event, iter_events

SECRET = "sk-stream-0123456789SECRET"
PROMPT = JobRequest(prompt="Hello", max_tokens=100)


def sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                "choices": [choice], **extra})  # fmt: skip


OPENAI_TEXT = (
    openai_chunk({"role": "assistant", "content": ""})
    + openai_chunk({"content": "Hello"})
    + openai_chunk({"content": " there"})
    + openai_chunk({}, "stop")
    + sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
           "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                                    "total_tokens": 11,
                                    "prompt_tokens_details": {"cached_tokens": 4}}})
    + sse("[DONE]")
)  # fmt: skip
OPENAI_TOOL = (
    openai_chunk({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]})
    + openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})
    + openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Lima"}'}}]})
    + openai_chunk({}, "tool_calls")
    + sse("[DONE]")
)  # fmt: skip
ANTHROPIC_TEXT = (
    sse({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 10, "output_tokens": 1}}},
        "message_start")
    + sse({"type": "content_block_start", "index": 0,
           "content_block": {"type": "text", "text": ""}}, "content_block_start")
    + sse({"type": "ping"}, "ping")
    + sse({"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": "Hello"}}, "content_block_delta")
    + sse({"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": "!"}}, "content_block_delta")
    + sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    + sse({"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        "content_block_start")
    + sse({"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": '{"city": "Li'}}, "content_block_delta")
    + sse({"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": 'ma"}'}}, "content_block_delta")
    + sse({"type": "content_block_stop", "index": 1}, "content_block_stop")
    + sse({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
           "usage": {"output_tokens": 15}}, "message_delta")
    + sse({"type": "message_stop"}, "message_stop")
)  # fmt: skip
GEMINI_TEXT = (
    "data: " + json.dumps({"candidates": [{"content": {"parts": [{"text": "Once upon"}],
                          "role": "model"}, "index": 0}],
                          "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
                          "modelVersion": "gemini-2.5-flash"}) + "\r\n\r\n"
    + "data: " + json.dumps({"candidates": [{"content": {"parts": [
        {"text": "thinking...", "thought": True}, {"text": " a time"}], "role": "model"},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4,
                          "thoughtsTokenCount": 3, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash"}) + "\r\n\r\n"
)  # fmt: skip


def stream_call(
    api: str, body: str, status: int = 200, headers: dict[str, str] | None = None
) -> tuple[Any, list[str], list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        kind = "text/event-stream" if status == 200 else "application/json"
        return httpx.Response(
            status, content=body.encode(), headers={"content-type": kind, **(headers or {})}
        )

    deltas: list[str] = []
    client = httpx.Client(transport=httpx.MockTransport(handle))
    completion = ADAPTERS[api](client, SECRET).stream(deployment(api), PROMPT, deltas.append)
    return completion, deltas, seen


def test_openai_stream_relays_text_and_keeps_usage() -> None:
    completion, deltas, [request] = stream_call("openai", OPENAI_TEXT)
    assert deltas == ["Hello", " there"] and completion.text == "Hello there"
    assert completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (9, 2)
    assert completion.usage.cached_input_tokens == 4
    sent = json.loads(request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_openai_stream_merges_tool_call_pieces() -> None:
    completion, deltas, _ = stream_call("openai", OPENAI_TOOL)
    assert deltas == [] and completion.finish_reason == "tool_calls"
    [call] = completion.tool_calls
    assert (call.id, call.function.name) == ("call_1", "get_weather")
    assert call.function.parsed_arguments() == {"city": "Lima"}
    assert completion.usage.output_tokens > 0  # estimated when the server sent no usage


def test_azure_streams_at_its_deployment_url_with_its_key_header() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=OPENAI_TEXT.encode())

    azure = deployment(
        "azure", base_url="https://res.openai.azure.com", model="my-gpt4o", api_version="2024-10-21"
    )
    client = httpx.Client(transport=httpx.MockTransport(handle))
    deltas: list[str] = []
    completion = ADAPTERS["azure"](client, SECRET).stream(azure, PROMPT, deltas.append)
    assert completion.text == "".join(deltas) == "Hello there"
    [request] = seen
    assert request.url.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert request.url.params["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == SECRET and json.loads(request.content)["stream"] is True


def test_anthropic_stream_rebuilds_text_tool_use_and_usage() -> None:
    completion, deltas, [request] = stream_call("anthropic", ANTHROPIC_TEXT)
    assert deltas == ["Hello", "!"] and completion.text == "Hello!"
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls[0].function.parsed_arguments() == {"city": "Lima"}
    assert completion.usage.input_tokens == 35 and completion.usage.cached_input_tokens == 10
    assert completion.usage.output_tokens == 15
    assert json.loads(request.content)["stream"] is True


def test_gemini_stream_skips_thoughts_and_keeps_the_last_usage() -> None:
    completion, deltas, [request] = stream_call("gemini", GEMINI_TEXT)
    assert deltas == ["Once upon", " a time"] and completion.text == "Once upon a time"
    assert completion.usage.output_tokens == 7 and completion.usage.reasoning_tokens == 3
    assert request.url.path.endswith(":streamGenerateContent")
    assert request.url.params["alt"] == "sse" and SECRET not in str(request.url)


@pytest.mark.parametrize(
    ("api", "body", "error"),
    [
        (
            "anthropic",
            ANTHROPIC_TEXT[: ANTHROPIC_TEXT.index("event: content_block_stop")]
            + sse(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Over"}}, "error"
            ),
            Overloaded,
        ),
        (
            "openai",
            openai_chunk({"content": "Hi"}) + sse({"error": {"message": "boom"}}),
            ServerError,
        ),
        ("openai", "".join(f"{e}\n\n" for e in OPENAI_TEXT.split("\n\n")[:3]), ServerError),
        ("anthropic", ANTHROPIC_TEXT[: ANTHROPIC_TEXT.index("event: message_delta")], ServerError),
        ("gemini", GEMINI_TEXT.split("\r\n\r\n")[0] + "\r\n\r\n", ServerError),
        ("openai", "data: {not json\n\n", ServerError),
    ],
    ids=[
        "anthropic-error-event",
        "openai-error-event",
        "openai-cut",
        "anthropic-cut",
        "gemini-cut",
        "openai-garbage",
    ],
)
def test_broken_streams_are_provider_errors(api: str, body: str, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        stream_call(api, body)
    assert type(caught.value) is error and SECRET not in str(caught.value)


def test_a_refused_stream_maps_its_status_and_retry_after() -> None:
    body = json.dumps({"error": {"message": f"slow down {SECRET}", "code": "rate_limit_exceeded"}})
    with pytest.raises(RateLimited) as caught:
        stream_call("openai", body, status=429, headers={"retry-after": "7"})
    assert caught.value.retry_after_s == 7 and SECRET not in str(caught.value)


def test_a_broken_connection_mid_stream_is_connection_failed() -> None:
    def chunks() -> Iterator[bytes]:
        yield openai_chunk({"content": "Hi"}).encode()
        raise httpx.RemoteProtocolError("peer closed connection")

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    client = httpx.Client(transport=httpx.MockTransport(handle))
    deltas: list[str] = []
    with pytest.raises(ConnectionFailed):
        ADAPTERS["openai"](client, SECRET).stream(deployment("openai"), PROMPT, deltas.append)
    assert deltas == ["Hi"]


def test_sse_decoder_handles_crlf_comments_and_multiline_data() -> None:
    lines = [": keepalive", "event: a", "data: one", "data: two", "", "data: x", ""]
    assert list(iter_events(lines)) == [Event("a", "one\ntwo"), Event(None, "x")]


# --- against the simulator ---------------------------------------------------------


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
def test_streamed_and_plain_calls_agree_through_the_simulator(api: str, simulator_url: str) -> None:
    # Given the same request made plainly and streamed, to the simulator
    with httpx.Client(timeout=10) as client:
        adapter, where = ADAPTERS[api](client, None), deployment(api, simulator_url)
        plain = adapter.complete(where, PROMPT)
        deltas: list[str] = []
        streamed = adapter.stream(where, PROMPT, deltas.append)
    # Then the text came in several pieces, and the answers are the same, usage included
    assert len(deltas) > 3 and "".join(deltas) == streamed.text
    assert streamed.model_dump() == plain.model_dump()


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
def test_streamed_tool_calls_through_the_simulator(api: str, simulator_url: str) -> None:
    request = JobRequest.model_validate({"prompt": "Weather in Lima?", "tools": [WEATHER_TOOL]})
    with httpx.Client(timeout=10) as client:
        completion = ADAPTERS[api](client, None).stream(
            deployment(api, simulator_url), request, lambda text: None
        )
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls[0].function.name == "get_weather"
    assert completion.tool_calls[0].function.parsed_arguments() == {"city": "example"}
