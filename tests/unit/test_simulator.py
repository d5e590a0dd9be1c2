"""The provider simulator, driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from orchestrator.simulator import create_simulator_app

HELLO: list[Any] = [{"role": "user", "content": "Say hello to the switchyard."}]


@pytest.fixture
def sdk(simulator_url: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=simulator_url, api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def http(simulator_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator_url) as client:
        yield client


def test_text_completion_parses_in_the_sdk(sdk: openai.OpenAI) -> None:
    """Given a text prompt, when the SDK asks for a completion, then it parses fully."""
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert 20 <= usage.completion_tokens <= 400
    assert usage.completion_tokens == len(choice.message.content.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_image_parts_are_accepted_and_billed(sdk: openai.OpenAI) -> None:
    """Given text and image parts, when completed, then images add to prompt tokens."""
    parts: list[Any] = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    with_image = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": parts}]
    )
    text_only = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": parts[:1]}]
    )

    assert with_image.usage is not None and text_only.usage is not None
    assert with_image.usage.prompt_tokens == text_only.usage.prompt_tokens + 765


def test_unknown_roles_are_accepted(sdk: openai.OpenAI) -> None:
    """Given developer and tool messages, when completed, then the simulator answers."""
    messages: list[Any] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
    ]
    completion = sdk.chat.completions.create(model="gpt-4.1", messages=messages)
    assert completion.choices[0].message.content


def test_answers_are_deterministic(sdk: openai.OpenAI) -> None:
    """Given the same request twice, the text is the same; another model differs."""
    first = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    second = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    other = sdk.chat.completions.create(model="o4-mini", messages=HELLO)

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert first.id != second.id


def test_max_tokens_caps_the_answer(sdk: openai.OpenAI) -> None:
    """Given max_tokens below the natural length, the answer stops with 'length'."""
    capped = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=7)
    newer = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_completion_tokens=7
    )

    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None and capped.usage.completion_tokens == 7
    assert newer.choices[0].message.content == capped.choices[0].message.content


def test_latency_header_is_honoured(sdk: openai.OpenAI) -> None:
    """Given x-simulator-latency-ms: 300, the answer takes at least 0.3 s."""
    started = time.perf_counter()
    sdk.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-simulator-latency-ms": "300"}
    )
    assert time.perf_counter() - started >= 0.3


def test_server_wide_latency_applies_to_every_answer() -> None:
    """Given an app created with 200 ms latency, a completion takes at least 0.2 s."""

    async def call() -> float:
        transport = httpx.ASGITransport(app=create_simulator_app(latency_ms=200))
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            started = time.perf_counter()
            response = await client.post(
                "/v1/chat/completions", json={"model": "m", "messages": HELLO}
            )
            assert response.status_code == 200
            return time.perf_counter() - started

    assert asyncio.run(call()) >= 0.2


def test_injected_429_is_a_rate_limit_error(sdk: openai.OpenAI) -> None:
    """Given x-simulator-fail: 429, the SDK raises RateLimitError and sees retry-after."""
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, extra_headers={"x-simulator-fail": "429"}
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        ("400", openai.BadRequestError),
        ("401", openai.AuthenticationError),
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
    ],
)
def test_injected_failures_map_to_sdk_errors(
    sdk: openai.OpenAI, fail: str, error: type[openai.APIStatusError]
) -> None:
    """Given an injected status, the SDK raises its error class for that status."""
    with pytest.raises(error):
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, extra_headers={"x-simulator-fail": fail}
        )


def test_stream_options_without_streaming_is_refused_in_openai_shape(sdk: openai.OpenAI) -> None:
    """Given stream_options without stream, the simulator answers OpenAI's 400 naming it."""
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream_options={"include_usage": True}
        )
    assert caught.value.param == "stream_options"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"messages": HELLO}, "model"),
        ({"model": "m", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": [{"content": "no role"}]}, "messages[0]"),
    ],
)
def test_invalid_bodies_get_openai_errors(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    """Given an invalid body, the answer is a 400 in OpenAI's error shape."""
    response = http.post("/chat/completions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_non_json_body_gets_an_openai_error(http: httpx.Client) -> None:
    """Given a body that is not JSON, the answer is a 400 in OpenAI's error shape."""
    response = http.post("/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_models_list_in_openai_shape(sdk: openai.OpenAI) -> None:
    """Given the simulator, the SDK lists its models."""
    ids = [model.id for model in sdk.models.list()]
    assert "gpt-4o-mini" in ids


def test_healthz(http: httpx.Client, simulator_url: str) -> None:
    """Given a running simulator, /healthz answers ok."""
    response = http.get(simulator_url.removesuffix("/v1") + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
