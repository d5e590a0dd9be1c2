"""Each adapter against the providers' own published responses (tests/fixtures/providers).

The provider's HTTP edge is faked with ``httpx.MockTransport`` answering the
fixture; everything behind it (body building, parsing, the error tree) is real.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import ImagePart, ImageURL, JobRequest, Message, TextPart
from orchestrator.core.tiers import Tier
from workers.providers import (
    ADAPTERS,
    AuthenticationFailed,
    BadRequest,
    ContentPolicy,
    ContextLengthExceeded,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    ServerError,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "providers"
SECRET = "sk-fixture-0123456789SECRET"
NOW_S = 1767225600.0  # 2026-01-01T00:00:00Z, the reference time of the reset headers
PROMPT = JobRequest(prompt="Hello", max_tokens=100)


def load(api: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{api}.json").read_text())
    return data


def deployment(api: str) -> Deployment:
    return Deployment(
        name=f"fx-{api}",
        provider=api,
        api=api,  # type: ignore[arg-type]
        model="fixture-model",
        base_url="https://provider.example/v1",
        tiers=(Tier.FAST,),
        input_usd_per_mtok=Decimal(1),
        output_usd_per_mtok=Decimal(2),
        context_window=200_000,
    )


def call(api: str, case: str, request: JobRequest = PROMPT) -> Any:
    fixture = load(api)["responses"][case]
    assert fixture["_source"].startswith("https://")

    def handle(req: httpx.Request) -> httpx.Response:
        return httpx.Response(fixture["status"], json=fixture["body"], headers=fixture["headers"])

    client = httpx.Client(transport=httpx.MockTransport(handle))
    return ADAPTERS[api](client, SECRET).complete(deployment(api), request)


def camel(value: Any) -> Any:
    """Google's JSON accepts snake_case and camelCase field names alike."""
    if isinstance(value, dict):
        return {
            re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


# --- successful answers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "text", "input_tokens", "output_tokens"),
    [
        ("openai", "Hello! How can I assist you today?", 19, 10),
        ("anthropic", "Hi! My name is Claude.", 2095, 503),
        ("gemini", "Once upon a time", 8, 421),
    ],
)
def test_text_reply(api: str, text: str, input_tokens: int, output_tokens: int) -> None:
    # Given the provider's documented text reply; When parsed
    completion = call(api, "text")
    # Then text, finish reason and usage are the provider's
    assert completion.text.startswith(text)
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == input_tokens
    assert completion.usage.output_tokens == output_tokens
    assert completion.tool_calls == []


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
def test_image_reply(api: str) -> None:
    # Given the documented answer to an image prompt; When parsed; Then it is text
    completion = call(api, "image")
    assert completion.text and completion.usage.input_tokens > 200


def image_request(url: str, text: str, image_first: bool) -> JobRequest:
    parts: list[TextPart | ImagePart] = [TextPart(text=text)]
    image = ImagePart(image_url=ImageURL(url=url))
    parts = [image, *parts] if image_first else [*parts, image]
    return JobRequest(messages=[Message(role="user", content=parts)], max_tokens=300)


def sent_body(api: str, request: JobRequest) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def handle(req: httpx.Request) -> httpx.Response:
        seen["body"] = json.loads(req.content)
        return httpx.Response(500, json={})

    client = httpx.Client(transport=httpx.MockTransport(handle))
    with pytest.raises(ServerError):
        ADAPTERS[api](client, SECRET).complete(deployment(api), request)
    body: dict[str, Any] = seen["body"]
    return body


def test_image_request_matches_the_openai_reference() -> None:
    # Given the reference's image request; When the same request is built canonically
    reference = load("openai")["image_request"]["body"]
    url = reference["messages"][0]["content"][1]["image_url"]["url"]
    body = sent_body("openai", image_request(url, "What's in this image?", image_first=False))
    # Then the messages are the reference's (detail "auto" is OpenAI's default)
    reference["messages"][0]["content"][1]["image_url"]["detail"] = "auto"
    assert body["messages"] == reference["messages"]


def test_image_request_matches_the_anthropic_reference() -> None:
    reference = load("anthropic")["image_request"]["body"]
    body = sent_body(
        "anthropic",
        image_request("data:image/jpeg;base64,/9j/4AAQSkZJRg==", "Describe this image.", True),
    )
    assert body["messages"] == reference["messages"]


def test_image_request_matches_the_gemini_reference() -> None:
    reference = load("gemini")["image_request"]["body"]
    body = sent_body(
        "gemini",
        image_request("data:image/jpeg;base64,/9j/4AAQSkZJRg==", "Caption this image.", True),
    )
    expected = camel(reference["contents"])
    expected[0]["role"] = "user"
    assert body["contents"] == expected


@pytest.mark.parametrize(
    ("api", "name", "arguments"),
    [
        ("openai", "get_current_weather", {"location": "Boston, MA"}),
        ("anthropic", "get_weather", {"location": "San Francisco, CA", "unit": "celsius"}),
        (
            "gemini",
            "schedule_meeting",
            {
                "attendees": ["Bob", "Alice"],
                "date": "2025-03-27",
                "time": "10:00",
                "topic": "Q3 planning",
            },
        ),
    ],
)
def test_tool_call(api: str, name: str, arguments: dict[str, Any]) -> None:
    # Given the documented tool-call reply; When parsed
    completion = call(api, "tool_call")
    # Then the call is passed through with its arguments, and the job stops for tools
    assert completion.finish_reason == "tool_calls"
    [tool_call] = completion.tool_calls
    assert tool_call.function.name == name
    assert tool_call.function.parsed_arguments() == arguments
    assert tool_call.id


@pytest.mark.parametrize(
    ("api", "case", "input_tokens", "cached", "written"),
    [
        ("openai", "cached_usage", 2006, 1920, 0),
        ("anthropic", "cached_usage", 21 + 188086, 0, 188086),
        ("anthropic", "cache_read_usage", 21 + 188086, 188086, 0),
        ("gemini", "cached_usage", 696219, 696190, 0),
    ],
)
def test_usage_with_cached_tokens(
    api: str, case: str, input_tokens: int, cached: int, written: int
) -> None:
    # Given a reply whose usage reports prompt-cache reads or writes; When parsed
    usage = call(api, case).usage
    # Then input counts every prompt token, and the cached parts are kept apart
    assert (usage.input_tokens, usage.cached_input_tokens) == (input_tokens, cached)
    assert usage.cache_write_input_tokens == written


@pytest.mark.parametrize(
    ("api", "case", "output_tokens", "reasoning"),
    [("openai", "reasoning_usage", 1186, 1024), ("gemini", "thinking_usage", 8 + 1138, 1138)],
)
def test_usage_with_reasoning_tokens(
    api: str, case: str, output_tokens: int, reasoning: int
) -> None:
    completion = call(api, case)
    assert completion.usage.output_tokens == output_tokens
    assert completion.usage.reasoning_tokens == reasoning
    assert "Thinking" not in completion.text  # thought summaries are not the answer


# --- errors --------------------------------------------------------------------------

ERRORS = [
    ("openai", "rate_limited", RateLimited, 1.0),
    ("openai", "insufficient_quota", QuotaExhausted, None),
    ("openai", "invalid_api_key", AuthenticationFailed, None),
    ("openai", "context_length", ContextLengthExceeded, None),
    ("openai", "bad_request", BadRequest, None),
    ("openai", "content_filter", ContentPolicy, None),
    ("openai", "server_error", ServerError, None),
    ("openai", "overloaded", Overloaded, None),
    ("anthropic", "rate_limited", RateLimited, 30.0),
    ("anthropic", "rate_limited_reset_only", RateLimited, 12.0),
    ("anthropic", "overloaded", Overloaded, None),
    ("anthropic", "server_error", ServerError, None),
    ("anthropic", "invalid_api_key", AuthenticationFailed, None),
    ("anthropic", "permission", AuthenticationFailed, None),
    ("anthropic", "not_found", BadRequest, None),
    ("anthropic", "request_too_large", BadRequest, None),
    ("anthropic", "context_length", ContextLengthExceeded, None),
    ("anthropic", "bad_request", BadRequest, None),
    ("anthropic", "billing", QuotaExhausted, None),
    ("gemini", "rate_limited", RateLimited, 19.0),
    ("gemini", "invalid_api_key", AuthenticationFailed, None),
    ("gemini", "permission", AuthenticationFailed, None),
    ("gemini", "not_found", BadRequest, None),
    ("gemini", "context_length", ContextLengthExceeded, None),
    ("gemini", "bad_request", BadRequest, None),
    ("gemini", "server_error", ServerError, None),
    ("gemini", "overloaded", Overloaded, None),
    ("gemini", "timeout", ProviderTimeout, None),
    ("gemini", "blocked", ContentPolicy, None),
]


@pytest.mark.parametrize(("api", "case", "error", "wait_s"), ERRORS)
def test_error_kinds(
    api: str,
    case: str,
    error: type[ProviderError],
    wait_s: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the provider's documented error answer (clock at the fixtures' reference time)
    monkeypatch.setattr("workers.providers.retry_after.time.time", lambda: NOW_S)
    # When the adapter gets it
    with pytest.raises(ProviderError) as caught:
        call(api, case)
    # Then it raises the error tree's class, with the wait the provider asked for
    raised = caught.value
    assert type(raised) is error
    assert raised.retry_after_s == (pytest.approx(wait_s) if wait_s is not None else None)
    assert (raised.provider, raised.model) == (api, "fixture-model")
    assert SECRET not in str(raised)
