"""Gemini batch mode in the simulator, over real HTTP, against the documented shapes.

The operation's documented shape: ``name`` ``batches/<id>``; ``metadata`` with the
``GenerateContentBatch`` ``@type``, ``model``, ``displayName``, ``state``
(``BATCH_STATE_*``) and ``batchStats`` (int64 strings); when done, ``done: true``
and ``response.inlinedResponses.inlinedResponses[]`` in request order, each with
``response`` or ``error`` and the request's ``metadata``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

MODEL = "gemini-2.0-flash"
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


@pytest.fixture
def gemini(fresh_simulator: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{fresh_simulator}/v1beta", timeout=10) as client:
        yield client


def configure(client: httpx.Client, **profile: Any) -> None:
    root = str(client.base_url).rstrip("/").removesuffix("/v1beta")
    client.put(f"{root}/_sim/config", json={"default": profile}).raise_for_status()


def request(i: int) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": f"Question number {i}?"}]}]}


def create(client: httpx.Client, n: int, **headers: str) -> dict[str, Any]:
    items = [{"request": request(i), "metadata": {"key": f"req-{i}"}} for i in range(n)]
    body = {"batch": {"display_name": "nightly", "input_config": {"requests": {"requests": items}}}}
    answer = client.post(f"/models/{MODEL}:batchGenerateContent", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    operation: dict[str, Any] = answer.json()
    return operation


def wait_until_done(client: httpx.Client, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        operation: dict[str, Any] = client.get(f"/{name}").json()
        if operation.get("done"):
            return operation
        assert time.monotonic() < deadline, operation["metadata"]["state"]
        time.sleep(0.1)


def test_a_batch_runs_then_succeeds_with_the_synchronous_answers(gemini: httpx.Client) -> None:
    # Given a processing time of 1 s and three inlined requests
    configure(gemini, batch_processing_s=1.0)
    created = create(gemini, 3)
    # When read at once and after its processing time
    running = gemini.get(f"/{created['name']}").json()
    done = wait_until_done(gemini, created["name"])
    # Then it was pending, then running, then succeeded with stats as int64 strings
    assert created["name"].startswith("batches/") and "done" not in created
    meta = created["metadata"]
    assert (meta["@type"], meta["model"], meta["displayName"]) == (
        BATCH_TYPE,
        f"models/{MODEL}",
        "nightly",
    )
    assert meta["state"] == "BATCH_STATE_PENDING"
    assert meta["batchStats"] == {"requestCount": "3", "pendingRequestCount": "3"}
    assert running["metadata"]["state"] == "BATCH_STATE_RUNNING"
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and "endTime" in done["metadata"]
    assert done["metadata"]["batchStats"] == {"requestCount": "3", "successfulRequestCount": "3"}
    # And its inlined responses, in order, are what generateContent answers
    assert done["response"]["@type"].endswith("GenerateContentBatchOutput")
    inlined = done["response"]["inlinedResponses"]["inlinedResponses"]
    assert [r["metadata"] for r in inlined] == [{"key": f"req-{i}"} for i in range(3)]
    for i, item in enumerate(inlined):
        direct = gemini.post(f"/models/{MODEL}:generateContent", json=request(i)).json()
        assert item["response"]["candidates"] == direct["candidates"]
        assert item["response"]["usageMetadata"] == direct["usageMetadata"]


def test_failed_and_invalid_requests_carry_an_error(gemini: httpx.Client) -> None:
    # Given a 50% line error rate drawn evenly, and a batch with one invalid request
    configure(gemini, batch_line_error_rate=0.5, fault_draw="even")
    items = [{"request": request(i)} for i in range(4)] + [{"request": {"contents": []}}]
    body = {"batch": {"displayName": "mixed", "inputConfig": {"requests": {"requests": items}}}}
    name = gemini.post(f"/models/{MODEL}:batchGenerateContent", json=body).json()["name"]
    # When it is done
    done = wait_until_done(gemini, name)
    # Then two lines failed as INTERNAL (13) and the invalid one as INVALID_ARGUMENT (3)
    inlined = done["response"]["inlinedResponses"]["inlinedResponses"]
    codes = sorted(item["error"]["code"] for item in inlined if "error" in item)
    assert codes == [3, 13, 13] and sum("response" in item for item in inlined) == 2
    stats = done["metadata"]["batchStats"]
    assert (stats["successfulRequestCount"], stats["failedRequestCount"]) == ("2", "3")


def test_an_expired_batch_is_done_without_output(gemini: httpx.Client) -> None:
    # Given a batch created with x-simulator-batch-expire
    created = create(gemini, 2, **{"x-simulator-batch-expire": "true"})
    # When it is done
    done = wait_until_done(gemini, created["name"])
    # Then it expired, with an error and no responses (Gemini keeps none)
    assert done["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    assert "response" not in done and "output" not in done["metadata"]
    assert done["error"]["code"] == 4


def test_cancel_answers_empty_then_the_batch_is_cancelled(
    gemini: httpx.Client, fresh_simulator: str
) -> None:
    # Given a batch that takes a minute
    configure(gemini, batch_processing_s=60)
    created = create(gemini, 2)
    # When cancelled
    answer = gemini.post(f"/{created['name']}:cancel")
    # Then the answer is {} and the operation is done, cancelled, without output
    assert answer.status_code == 200 and answer.json() == {}
    done = gemini.get(f"/{created['name']}").json()
    assert done["done"] is True and done["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    assert done["error"]["code"] == 1 and "response" not in done
    stats = httpx.get(f"{fresh_simulator}/_sim/stats").json()["batches"]["formats"]["gemini"]
    assert (stats["cancelled"], stats["lines_cancelled"]) == (1, 2)
    # And after a reset the counters are zero again
    httpx.post(f"{fresh_simulator}/_sim/reset").raise_for_status()
    total = httpx.get(f"{fresh_simulator}/_sim/stats").json()["batches"]["total"]
    assert set(total.values()) == {0}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"batch": {"display_name": "x"}}, 400),
        ({"batch": {"input_config": {"requests": {"requests": [{"request": request(0)}]}}}}, 400),
        ({"batch": {"display_name": "x", "input_config": {"file_name": "files/abc"}}}, 400),
    ],
)
def test_malformed_batches_are_400s_in_googles_shape(
    gemini: httpx.Client, body: dict[str, Any], status: int
) -> None:
    # When a malformed batch is created
    answer = gemini.post(f"/models/{MODEL}:batchGenerateContent", json=body)
    # Then the error is Google's shape
    assert answer.status_code == status
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_unknown_batches_are_404s(gemini: httpx.Client) -> None:
    answer = gemini.get("/batches/nope")
    assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND"
