"""Which failed batch lines may wait for another provider batch (issue 26).

Each adapter's ``results`` names the failed lines whose request itself was
refused (``Results.final``: a 4xx, Anthropic's ``invalid_request_error``, Gemini's
``INVALID_ARGUMENT``); those go synchronous, which reports the reason. A server
error, an overload, an expired or cancelled line may be answered by the next
provider batch. The provider edge is an ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment, load_catalog
from orchestrator.core.config import Settings
from workers.providers.batch_anthropic import AnthropicBatchAdapter
from workers.providers.batch_base import Manifest
from workers.providers.batch_gemini import GeminiBatchAdapter
from workers.providers.batch_openai import OpenAIBatchAdapter

Handler = Callable[[httpx.Request], httpx.Response]


def deployment(name: str) -> Deployment:
    return load_catalog(Settings(simulator_url="http://testserver/v1")).get(name)


def jsonl(rows: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, content=b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_openai_a_refused_request_is_final_a_server_error_is_not() -> None:
    def status(code: int) -> dict[str, Any]:
        return {"status_code": code, "body": {"error": {"message": "no"}}}

    out = [
        {"custom_id": "bad", "response": status(400)},
        {"custom_id": "busy", "response": status(500)},
    ]
    err = [
        {"custom_id": "limited", "response": status(429)},
        {"custom_id": "late", "response": None, "error": {"code": "batch_expired"}},
    ]
    with client(lambda r: jsonl(out if "out" in r.url.path else err)) as http:
        adapter = OpenAIBatchAdapter(http, deployment("sim-gpt-4o-mini"), None)
        found = adapter.results("batch_1", "file-out", "file-err", Manifest("t"))
    assert found.failed == {"bad", "busy", "limited", "late"}
    assert found.final == {"bad"}


def test_anthropic_an_invalid_request_is_final_an_overload_or_expiry_is_not() -> None:
    def errored(kind: str) -> dict[str, Any]:
        return {"type": "errored", "error": {"type": "error", "error": {"type": kind}}}

    rows = [
        {"custom_id": "bad", "result": errored("invalid_request_error")},
        {"custom_id": "busy", "result": errored("overloaded_error")},
        {"custom_id": "late", "result": {"type": "expired"}},
        {"custom_id": "gone", "result": {"type": "canceled"}},
    ]
    with client(lambda r: jsonl(rows)) as http:
        adapter = AnthropicBatchAdapter(http, deployment("sim-claude-sonnet-4"), None)
        found = adapter.results("msgbatch_1", None, None, Manifest("t"))
    assert found.failed == {"bad", "busy", "late", "gone"}
    assert found.final == {"bad"}


def test_gemini_an_invalid_argument_is_final_an_internal_error_is_not() -> None:
    items = [
        {"error": {"code": 3, "message": "bad"}, "metadata": {"key": "bad"}},
        {"error": {"code": 13, "message": "internal"}, "metadata": {"key": "busy"}},
    ]
    operation = {
        "name": "batches/1",
        "done": True,
        "metadata": {"state": "BATCH_STATE_SUCCEEDED"},
        "response": {"inlinedResponses": {"inlinedResponses": items}},
    }
    with client(lambda r: httpx.Response(200, json=operation)) as http:
        adapter = GeminiBatchAdapter(http, deployment("sim-gemini-2.5-flash"), None)
        found = adapter.results("batches/1", None, None, Manifest("t", 2, ("bad", "busy")))
    assert found.failed == {"bad", "busy"}
    assert found.final == {"bad"}
