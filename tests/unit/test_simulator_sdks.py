"""The official ``openai`` and ``anthropic`` SDKs against the simulator, over real HTTP.

Every kind of answer the simulator can emit is parsed by the SDK of its format;
every failure surfaces as that SDK's own exception class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

LONG_SYSTEM = "You are the switchyard's careful assistant. " * 120  # ~1,300 tokens
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}
HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]


def configure(root: str, config: dict[str, Any]) -> None:
    httpx.put(f"{root}/_sim/config", json=config).raise_for_status()


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


# --- OpenAI SDK -----------------------------------------------------------------------


def test_openai_sdk_parses_a_tool_call(oai: openai.OpenAI) -> None:
    # Given a request offering a tool; When completed
    completion = oai.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, tools=[{"type": "function", "function": WEATHER}]
    )
    # Then the SDK parses the tool call, with arguments fitting the schema
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "example", "days": 1}


def test_openai_sdk_parses_cached_and_reasoning_usage(oai: openai.OpenAI) -> None:
    # Given a long system prompt sent twice to a reasoning model, with different questions
    def ask(question: str) -> Any:
        messages: Any = [
            {"role": "system", "content": LONG_SYSTEM},
            {"role": "user", "content": question},
        ]
        return oai.chat.completions.create(model="o3", messages=messages).usage

    first, second = ask("First question?"), ask("Second question?")
    # Then the second reports its cached prefix (in steps of 128), and both their reasoning
    assert first.prompt_tokens_details.cached_tokens == 0
    cached = second.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached < second.prompt_tokens
    assert 0 < second.completion_tokens_details.reasoning_tokens < second.completion_tokens


def test_openai_sdk_parses_json_mode(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, response_format={"type": "json_object"}
    )
    assert set(json.loads(completion.choices[0].message.content or "")) == {"answer"}


def test_openai_sdk_sees_the_limiter_429_with_retry_after(
    oai: openai.OpenAI, fresh_simulator: str
) -> None:
    # Given gpt-4o-mini limited to 2 requests per minute
    configure(fresh_simulator, {"models": {"gpt-4o-mini": {"rpm_limit": 2}}})
    ok = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # When a third request comes within the minute
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # Then it is the SDK's RateLimitError, with the wait in retry-after
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("429", openai.RateLimitError, 429),
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("529", openai.InternalServerError, 529),
        ("timeout", openai.InternalServerError, 504),
    ],
)
def test_openai_sdk_raises_its_error_for_each_injected_kind(
    oai: openai.OpenAI,
    fresh_simulator: str,
    kind: str,
    error: type[openai.APIStatusError],
    status: int,
) -> None:
    # Given every request to the model fails with this kind (timeouts hang 0 s)
    configure(fresh_simulator, {"default": {"error_rates": {kind: 1.0}, "timeout_s": 0}})
    # When the SDK calls; Then it raises its own class for that status
    with pytest.raises(error) as caught:
        oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == status


def test_openai_sdk_times_out_on_a_hanging_request(
    oai: openai.OpenAI, fresh_simulator: str
) -> None:
    configure(fresh_simulator, {"default": {"error_rates": {"timeout": 1.0}, "timeout_s": 2}})
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.2).chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_openai_sdk_refuses_a_malformed_body(oai: openai.OpenAI, fresh_simulator: str) -> None:
    configure(fresh_simulator, {"default": {"error_rates": {"malformed": 1.0}}})
    with pytest.raises((openai.APIError, json.JSONDecodeError)):
        oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_openai_sdk_gets_the_context_length_error(oai: openai.OpenAI, fresh_simulator: str) -> None:
    # Given a 1,000-token window; When 600 prompt tokens ask for 500 more
    configure(fresh_simulator, {"models": {"gpt-4o-mini": {"context_window": 1000}}})
    prompt: Any = [{"role": "user", "content": "word " * 480}]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="gpt-4o-mini", messages=prompt, max_tokens=500)
    # Then it is OpenAI's context_length_exceeded
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 1000 tokens" in caught.value.message


# --- Anthropic SDK --------------------------------------------------------------------


def test_anthropic_sdk_parses_text_image_and_system(claude: anthropic.Anthropic) -> None:
    # Given a system prompt and a base64 image; When a message is created
    message = claude.messages.create(
        model="claude-sonnet-4",
        max_tokens=300,
        system="Be brief.",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                ],
            }
        ],
    )
    # Then the SDK parses it fully
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 765 and message.usage.output_tokens > 0


def test_anthropic_sdk_parses_max_tokens_stop(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-sonnet-4", max_tokens=3, messages=HELLO)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_anthropic_sdk_parses_tool_use(claude: anthropic.Anthropic) -> None:
    tool: Any = {"name": WEATHER["name"], "input_schema": WEATHER["parameters"]}
    message = claude.messages.create(
        model="claude-sonnet-4", max_tokens=300, messages=HELLO, tools=[tool]
    )
    assert message.stop_reason == "tool_use"
    block = message.content[-1]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"city": "example", "days": 1}


def test_anthropic_sdk_parses_cache_creation_then_read(claude: anthropic.Anthropic) -> None:
    # Given a long system prompt marked for caching, sent twice
    system: Any = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]

    def ask(question: str) -> Any:
        messages: Any = [{"role": "user", "content": question}]
        return claude.messages.create(
            model="claude-sonnet-4", max_tokens=50, system=system, messages=messages
        ).usage

    first, second = ask("One?"), ask("Two?")
    # Then the first writes the prefix to the cache and the second reads it
    assert first.cache_creation_input_tokens >= 1024 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0 and second.input_tokens < 20


def test_anthropic_sdk_sees_the_limiter_429_with_retry_after(
    claude: anthropic.Anthropic, fresh_simulator: str
) -> None:
    # Given a token limit that one request fills
    configure(fresh_simulator, {"models": {"claude-sonnet-4": {"tpm_limit": 500}}})
    ok = claude.messages.with_raw_response.create(
        model="claude-sonnet-4", max_tokens=400, messages=HELLO
    )
    assert ok.headers["anthropic-ratelimit-tokens-limit"] == "500"
    # When another comes within the minute; Then the SDK's RateLimitError with retry-after
    with pytest.raises(anthropic.RateLimitError) as caught:
        for _ in range(30):
            claude.messages.create(model="claude-sonnet-4", max_tokens=400, messages=HELLO)
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["anthropic-ratelimit-tokens-remaining"] is not None
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", anthropic.RateLimitError),
        ("500", anthropic.InternalServerError),
        ("503", anthropic.ServiceUnavailableError),
        ("529", anthropic.OverloadedError),
        ("timeout", anthropic.GatewayTimeoutError),
    ],
)
def test_anthropic_sdk_raises_its_error_for_each_injected_kind(
    claude: anthropic.Anthropic, fresh_simulator: str, kind: str, error: type[Exception]
) -> None:
    configure(fresh_simulator, {"default": {"error_rates": {kind: 1.0}, "timeout_s": 0}})
    with pytest.raises(error):
        claude.messages.create(model="claude-sonnet-4", max_tokens=10, messages=HELLO)


def test_anthropic_sdk_gets_the_context_length_error(
    claude: anthropic.Anthropic, fresh_simulator: str
) -> None:
    configure(fresh_simulator, {"models": {"claude-sonnet-4": {"context_window": 1000}}})
    prompt: Any = [{"role": "user", "content": "word " * 1200}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="claude-sonnet-4", max_tokens=10, messages=prompt)
    assert "prompt is too long" in caught.value.message


def test_anthropic_sdk_refuses_a_malformed_body(
    claude: anthropic.Anthropic, fresh_simulator: str
) -> None:
    configure(fresh_simulator, {"default": {"error_rates": {"malformed": 1.0}}})
    with pytest.raises((anthropic.APIError, json.JSONDecodeError)):
        claude.messages.create(model="claude-sonnet-4", max_tokens=10, messages=HELLO)
