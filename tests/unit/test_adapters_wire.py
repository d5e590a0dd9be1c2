"""Canonical request -> each wire format, and each adapter against the real simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from workers.providers import ADAPTERS, ContextLengthExceeded, RateLimited
from workers.providers import anthropic as anthropic_wire
from workers.providers import gemini as gemini_wire
from workers.providers import openai as openai_wire
from workers.providers.transport import post

SECRET = "sk-wire-0123456789SECRET"
IMAGE = "data:image/png;base64,iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CONVERSATION: dict[str, Any] = {
    "system": "You are terse.",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
        {"role": "assistant", "content": "Lima: 18C."},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
    "max_tokens": 200,
    "temperature": 1.5,
    "stop": ["END"],
}


def deployment(api: str, base_url: str = "https://p.example/v1", **extra: Any) -> Deployment:
    fields: dict[str, Any] = {
        "name": f"w-{api}",
        "provider": "simulator",
        "api": api,
        "model": {"anthropic": "claude-sonnet-4", "gemini": "gemini-2.5-flash"}.get(
            api, "gpt-4o-mini"
        ),
        "base_url": base_url,
        "tiers": (Tier.FAST,),
        "input_usd_per_mtok": Decimal(1),
        "output_usd_per_mtok": Decimal(2),
        "context_window": 200_000,
        "max_output_tokens": 1000,
    }
    return Deployment(**(fields | extra))


REQUEST = JobRequest.model_validate(CONVERSATION)


def test_anthropic_body_keeps_system_images_turns_and_tools() -> None:
    # Given a conversation with a system prompt, an image, a tool round trip and cache marks
    body = anthropic_wire.build_body(deployment("anthropic"), REQUEST)
    # Then the system prompt is top-level and the turns alternate as content blocks
    assert body["system"] == "You are terse."
    assert [m["role"] for m in body["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    first = body["messages"][0]["content"]
    assert first[0] == {
        "type": "text",
        "text": "Long context",
        "cache_control": {"type": "ephemeral"},
    }
    assert first[1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgo=",
    }
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lima"}}
    ]
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["tools"][0]["input_schema"]["required"] == ["city"]
    assert body["tool_choice"] == {"type": "auto"}
    assert body["temperature"] == 1.0  # Anthropic's range is 0..1
    assert body["stop_sequences"] == ["END"]
    assert body["max_tokens"] == 200


def test_gemini_body_keeps_system_images_turns_and_tools() -> None:
    body = gemini_wire.build_body(deployment("gemini"), REQUEST)
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model", "user"]
    assert body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    }
    assert body["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Lima"}}}
    ]
    response = body["contents"][2]["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"content": "18C, cloudy"}}
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert body["generationConfig"] == {
        "maxOutputTokens": 200,
        "temperature": 1.5,
        "stopSequences": ["END"],
    }


def test_openai_body_strips_cache_marks_and_passes_tools() -> None:
    body = openai_wire.build_body(deployment("openai"), REQUEST)
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert "cache_control" not in body["messages"][1]["content"][0]
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'},
            }
        ],
    }
    assert body["messages"][3] == {
        "role": "tool",
        "content": "18C, cloudy",
        "tool_call_id": "call_1",
    }
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == "auto"


def test_json_response_format_in_each_format() -> None:
    # Given a request for JSON that follows a schema
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    request = JobRequest.model_validate(
        {
            "prompt": "Answer in JSON",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema},
            },
        }
    )
    # Then OpenAI gets it as is, Gemini as a MIME type and schema, Anthropic as an instruction
    oai = openai_wire.build_body(deployment("openai"), request)["response_format"]
    assert oai == {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    config = gemini_wire.build_body(deployment("gemini"), request)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema
    system = anthropic_wire.build_body(deployment("anthropic"), request)["system"]
    assert "JSON" in system and json.dumps(schema) in system


def test_reasoning_models_get_max_completion_tokens() -> None:
    body = openai_wire.build_body(deployment("openai", model="o4-mini"), JobRequest(prompt="hi"))
    assert "max_tokens" not in body and body["max_completion_tokens"] == 512


def test_azure_uses_its_deployment_url_and_api_key_header() -> None:
    # Given an Azure deployment
    seen: dict[str, Any] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen["url"], seen["headers"] = str(request.url), request.headers
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    azure = deployment(
        "azure", base_url="https://res.openai.azure.com", model="my-gpt4o", api_version="2024-10-21"
    )
    client = httpx.Client(transport=httpx.MockTransport(handle))
    # When it is called
    ADAPTERS["azure"](client, SECRET).complete(azure, JobRequest(prompt="hi"))
    # Then the URL names the Azure deployment and version, and the key is in api-key
    assert seen["url"] == (
        "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert seen["headers"]["api-key"] == SECRET and "authorization" not in seen["headers"]


def test_azure_without_api_version_is_refused() -> None:
    with pytest.raises(ValueError, match="api_version"):
        deployment("azure")


def test_keys_travel_in_headers_never_in_urls() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json={})

    client = httpx.Client(transport=httpx.MockTransport(handle))
    for api in ("openai", "anthropic", "gemini"):
        with pytest.raises(Exception):  # noqa: B017 - the 500 is not what this test is about
            ADAPTERS[api](client, SECRET).complete(deployment(api), JobRequest(prompt="hi"))
    assert all(SECRET not in str(r.url) for r in seen)
    assert seen[1].headers["x-api-key"] == SECRET
    assert seen[1].headers["anthropic-version"] == "2023-06-01"
    assert seen[2].headers["x-goog-api-key"] == SECRET


# --- against the simulator ---------------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
def test_each_adapter_round_trips_through_the_simulator(
    api: str, simulator_url: str, client: httpx.Client
) -> None:
    # Given the full conversation, ending with a user question
    completion = ADAPTERS[api](client, None).complete(deployment(api, simulator_url), REQUEST)
    # Then the simulator parsed it and answered in the same format
    assert completion.usage.input_tokens > 765  # the image is billed
    assert completion.provider_model
    assert completion.text or completion.tool_calls


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
def test_tool_calls_come_back_from_the_simulator(
    api: str, simulator_url: str, client: httpx.Client
) -> None:
    request = JobRequest.model_validate({"prompt": "Weather in Lima?", "tools": [WEATHER_TOOL]})
    completion = ADAPTERS[api](client, None).complete(deployment(api, simulator_url), request)
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls[0].function.name == "get_weather"
    assert completion.tool_calls[0].function.parsed_arguments() == {"city": "example"}


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
def test_simulated_failures_map_in_every_format(api: str, simulator_url: str) -> None:
    dep = deployment(api, simulator_url)
    with (
        httpx.Client(headers={"x-simulator-fail": "429"}) as failing,
        pytest.raises(RateLimited) as caught,
    ):
        ADAPTERS[api](failing, None).complete(dep, REQUEST)
    assert caught.value.retry_after_s == 1.0
    too_long = httpx.Client(headers={"x-simulator-fail": "context_length_exceeded"})
    with too_long, pytest.raises(ContextLengthExceeded):
        ADAPTERS[api](too_long, None).complete(dep, REQUEST)


def test_a_provider_post_sends_what_the_client_would_and_honours_its_timeout() -> None:
    # Given a client with a timeout and default headers, and a provider that records
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True}, headers={"set-cookie": "s=1"})

    client = httpx.Client(transport=httpx.MockTransport(provider), timeout=7.5)
    url, body, headers = "https://api.example/v1/x", {"a": [1, "é"]}, {"authorization": "k"}
    # When one call goes through the workers' post, then one through the client
    via_post = post(client, url, body=body, headers=headers)
    kept = dict(client.cookies)
    via_client = client.post(url, json=body, headers=headers)
    # Then the provider saw the same request: method, URL, headers, body, timeout
    mine, its = seen
    assert (mine.method, mine.url, mine.content) == (its.method, its.url, its.content)
    assert mine.headers.multi_items() == its.headers.multi_items()
    timeout = httpx.Timeout(7.5).as_dict()
    assert mine.extensions["timeout"] == its.extensions["timeout"] == timeout
    # And the answer reads the same, read whole; a provider's cookie is not kept by post
    assert via_post.json() == via_client.json() and via_post.request is mine
    assert via_post.is_success and via_post.is_closed and kept == {}
