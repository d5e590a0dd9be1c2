"""The OpenAI chat adapter: against the real simulator, and against faked HTTP edges."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from orchestrator.core.catalog import Deployment
from orchestrator.core.config import Settings
from orchestrator.core.schemas import ImagePart, ImageURL, JobRequest, Message, TextPart
from orchestrator.core.tiers import Tier
from workers.providers import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContentPolicy,
    ContextLengthExceeded,
    OpenAIChatAdapter,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    ServerError,
    adapter_for,
    retry_after_s,
)

SECRET = "sk-live-0123456789abcdefSECRET"
Handler = Callable[[httpx.Request], httpx.Response]


def deployment(base_url: str, **changes: Any) -> Deployment:
    fields: dict[str, Any] = {
        "name": "sim-mini",
        "provider": "simulator",
        "model": "gpt-4o-mini",
        "base_url": base_url,
        "tiers": (Tier.FAST,),
        "input_usd_per_mtok": Decimal("0.15"),
        "output_usd_per_mtok": Decimal("0.60"),
        "context_window": 128_000,
        "max_output_tokens": 1000,
    }
    return Deployment(**(fields | changes))


def mocked(handler: Handler) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(httpx.Client(transport=httpx.MockTransport(handler)), SECRET)


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return handle


def fail_with(exc: type[httpx.TransportError]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    return handle


def oai_error(message: str, code: str | None = None, type_: str = "invalid_request_error") -> Any:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


REQUEST = JobRequest(prompt="Summarise the switchyard design.", max_tokens=64)
MOCK = deployment("https://api.example.com/v1/")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def test_completes_against_the_simulator(simulator_url: str, client: httpx.Client) -> None:
    """Given the simulator, when completing a prompt, then text and usage come back."""
    completion = OpenAIChatAdapter(client, None).complete(deployment(simulator_url), REQUEST)

    assert completion.text
    assert completion.provider_model == "gpt-4o-mini"
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage.input_tokens > 0
    assert 0 < completion.usage.output_tokens <= 64


def test_images_reach_the_simulator(simulator_url: str, client: httpx.Client) -> None:
    """Given a message with an image part, the simulator bills the image."""
    image = ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA", detail="low"))
    request = JobRequest(messages=[Message(role="user", content=[TextPart(text="hi"), image])])

    completion = OpenAIChatAdapter(client, None).complete(deployment(simulator_url), request)

    assert completion.usage.input_tokens >= 85


def test_max_tokens_cap_reports_length(simulator_url: str, client: httpx.Client) -> None:
    """Given max_tokens=3, the answer is cut and finish_reason is 'length'."""
    request = JobRequest(prompt="Tell me everything.", max_tokens=3)
    completion = OpenAIChatAdapter(client, None).complete(deployment(simulator_url), request)
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens == 3


def test_simulated_429_carries_retry_after(simulator_url: str) -> None:
    """Given the simulator told to fail with 429, the adapter raises RateLimited(1 s)."""
    failing = httpx.Client(headers={"x-simulator-fail": "429"})
    with failing, pytest.raises(RateLimited) as caught:
        OpenAIChatAdapter(failing, None).complete(deployment(simulator_url), REQUEST)
    assert caught.value.retry_after_s == 1.0
    assert caught.value.retryable


def test_wire_body_and_auth_header() -> None:
    """Given a request with parameters, the body and Authorization header are OpenAI's."""
    seen: dict[str, Any] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["auth"] = request.headers["authorization"]
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    request = JobRequest(prompt="hi", max_tokens=5000, temperature=0.2, top_p=0.9, stop=["\n"])
    completion = mocked(handle).complete(MOCK, request)

    assert seen["url"] == "https://api.example.com/v1/chat/completions"
    assert seen["auth"] == f"Bearer {SECRET}"
    assert seen["body"] == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1000,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n"],
    }
    assert completion.text == "ok"
    assert completion.usage.output_tokens == 1  # estimated: the answer had no usage


@pytest.mark.parametrize(
    ("handler", "error", "retryable"),
    [
        (answer(429, oai_error("slow down"), {"retry-after": "2"}), RateLimited, True),
        (answer(529, {"type": "error", "error": {"type": "overloaded_error"}}), Overloaded, True),
        (answer(503, oai_error("busy", type_="server_error")), Overloaded, True),
        (answer(500, oai_error("oops", type_="server_error")), ServerError, True),
        (answer(502, "bad gateway"), ServerError, True),
        (
            answer(400, oai_error("too long", "context_length_exceeded")),
            ContextLengthExceeded,
            False,
        ),
        (
            answer(400, oai_error("This model's maximum context length is 8192")),
            ContextLengthExceeded,
            False,
        ),
        (answer(400, oai_error("filtered", "content_filter")), ContentPolicy, False),
        (answer(400, oai_error("bad param")), BadRequest, False),
        (answer(404, oai_error("no such model", "model_not_found")), BadRequest, False),
        (answer(401, oai_error("bad key", "invalid_api_key")), AuthenticationFailed, False),
        (answer(403, oai_error("forbidden")), AuthenticationFailed, False),
        (answer(429, oai_error("quota", "insufficient_quota")), QuotaExhausted, False),
        (fail_with(httpx.ReadTimeout), ProviderTimeout, True),
        (fail_with(httpx.ConnectTimeout), ProviderTimeout, True),
        (fail_with(httpx.ConnectError), ConnectionFailed, True),
        (fail_with(httpx.RemoteProtocolError), ConnectionFailed, True),
    ],
)
def test_failures_map_to_the_error_tree(
    handler: Handler, error: type[ProviderError], retryable: bool
) -> None:
    """Given a failing provider, the adapter raises the matching error, never httpx's."""
    with pytest.raises(error) as caught:
        mocked(handler).complete(MOCK, REQUEST)

    raised = caught.value
    assert type(raised) is error
    assert raised.retryable is retryable
    assert (raised.provider, raised.model) == ("simulator", "gpt-4o-mini")


def test_rate_limit_reads_retry_after() -> None:
    """Given a 429 with retry-after: 2, the error carries 2 seconds and the status."""
    with pytest.raises(RateLimited) as caught:
        mocked(answer(429, oai_error("slow"), {"retry-after": "2"})).complete(MOCK, REQUEST)
    assert caught.value.retry_after_s == 2.0
    assert caught.value.status == 429


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        b"",
        b'{"object": "chat.completion"}',
        b'{"choices": []}',
        b'{"choices": [{"finish_reason": "stop"}]}',
        b'{"choices": [{"message": {"content": 42}}]}',
        b'{"error": {"message": "upstream failed"}}',
    ],
)
def test_malformed_200_is_a_retryable_server_error(body: bytes) -> None:
    """Given a 200 whose body is not a completion, the adapter raises ServerError."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with pytest.raises(ServerError) as caught:
        mocked(handle).complete(MOCK, REQUEST)
    assert caught.value.retryable
    assert caught.value.status == 200


def test_real_connection_refused_is_connection_failed(client: httpx.Client) -> None:
    """Given nothing listening on the port, the adapter raises ConnectionFailed."""
    with pytest.raises(ConnectionFailed):
        OpenAIChatAdapter(client, None).complete(deployment("http://127.0.0.1:9/v1"), REQUEST)


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_api_key_never_appears_in_errors(status: int) -> None:
    """Given a provider that echoes the API key, the error text does not contain it."""
    echoed = oai_error(f"Incorrect API key provided: {SECRET}. Key {SECRET} rejected.")

    with pytest.raises(ProviderError) as caught:
        mocked(answer(status, echoed)).complete(MOCK, REQUEST)

    raised = caught.value
    for text in (str(raised), repr(raised), raised.message, *map(str, raised.args)):
        assert SECRET not in text
    assert "[REDACTED]" in raised.message


def test_errors_survive_pickling() -> None:
    """Given a RateLimited error, pickling keeps its class and fields (Celery needs it)."""
    with pytest.raises(RateLimited) as caught:
        mocked(answer(429, oai_error("slow"), {"retry-after": "3"})).complete(MOCK, REQUEST)

    copy = pickle.loads(pickle.dumps(caught.value))

    assert type(copy) is RateLimited
    assert (copy.retry_after_s, copy.status, str(copy)) == (3.0, 429, str(caught.value))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, 10.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "250ms"}, 0.25),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "1m30s"}, 90.0),
        (
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "2s",
                "x-ratelimit-remaining-tokens": "5000",
                "x-ratelimit-reset-tokens": "1m",
            },
            2.0,
        ),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    """Given a provider's headers, the wait is read from the header that applies."""
    now_s = 1767225600.0  # 2026-01-01T00:00:00Z
    assert retry_after_s(headers, now_s=now_s) == pytest.approx(seconds)


def test_adapter_for_uses_the_referenced_key(client: httpx.Client) -> None:
    """Given a deployment with api_key_ref, the adapter sends the key from the settings."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    settings = Settings(provider_keys={"openai-main": SECRET})
    keyed = MOCK.model_copy(update={"api_key_ref": "openai-main"})
    with httpx.Client(transport=httpx.MockTransport(handle)) as http:
        adapter_for(MOCK, http, settings).complete(MOCK, REQUEST)
        adapter_for(keyed, http, settings).complete(keyed, REQUEST)

    assert seen == ["Bearer sk-simulator", f"Bearer {SECRET}"]
