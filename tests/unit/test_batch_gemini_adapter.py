"""The Gemini batch adapter against the simulator's batch mode (in-process).

The deployment's base URL ends in ``/v1`` (as the simulator catalog's does); batch
mode is served under ``/v1beta`` only, which the adapter speaks to.
"""

from __future__ import annotations

import json
from typing import cast

import httpx
from fastapi.testclient import TestClient

from orchestrator.core.schemas import JobRequest
from tests.unit.batch_adapters import (
    assert_answers_read_as_sync,
    ended_batch,
    jobs,
    sim_deployment,
    simulator,
)
from workers.providers.batch_base import Manifest
from workers.providers.batch_gemini import GeminiBatchAdapter, batch_root
from workers.providers.gemini import GeminiAdapter, build_body

DEPLOYMENT = "sim-gemini-2.5-flash"


def adapter(client: httpx.Client | TestClient) -> GeminiBatchAdapter:
    return GeminiBatchAdapter(cast(httpx.Client, client), sim_deployment(DEPLOYMENT), None)


def manifest(tag: str, requests: dict[str, JobRequest]) -> Manifest:
    return Manifest(tag, len(requests), tuple(requests))


def submit(batches: GeminiBatchAdapter, tag: str, requests: dict[str, JobRequest]) -> str:
    lines = [batches.line(cid, r) for cid, r in requests.items()]
    return batches.create(None, tag, lines).id


def test_batch_mode_is_spoken_at_v1beta() -> None:
    assert batch_root("http://h:1/v1") == "http://h:1/v1beta"
    assert batch_root("https://g.example/v1beta/") == "https://g.example/v1beta"


def test_lines_ask_and_answers_read_as_the_synchronous_call(sim: TestClient) -> None:
    batches, dep = adapter(sim), sim_deployment(DEPLOYMENT)
    requests = jobs(3)
    # Given lines whose request is the synchronous generateContent body, keyed by custom id
    lines = [batches.line(cid, r) for cid, r in requests.items()]
    for row, (cid, request) in zip(lines, requests.items(), strict=True):
        assert json.loads(row) == {"request": build_body(dep, request), "metadata": {"key": cid}}
    # When the batch is created, has ended (no processing time) and is read
    made = batches.create(None, "pbat_g", lines)
    assert made.id.startswith("batches/") and made.status == "BATCH_STATE_PENDING"
    state = batches.poll(made.id)
    assert (state.ended, state.status, state.completed) == (True, "BATCH_STATE_SUCCEEDED", 3)
    found = batches.results(made.id, None, None, manifest("pbat_g", requests))
    # Then every answer parses to what the synchronous adapter gets, at half its price
    sync = GeminiAdapter(cast(httpx.Client, sim), None)
    assert_answers_read_as_sync(batches, found, requests, sync, dep)


def test_a_lost_create_reply_is_found_by_its_display_name() -> None:
    with simulator(batch_processing_s=3600.0) as client:
        batches = adapter(client)
        ours = jobs(2)
        # Given nothing made under our tag, and another batch of the same size
        assert batches.find_batch(manifest("pbat_ours", ours)) is None
        submit(batches, "pbat_other", jobs(2, "other"))
        # When our create reaches the provider but its reply is lost
        made = submit(batches, "pbat_ours", ours)
        # Then the retry finds that one, still running
        found = batches.find_batch(manifest("pbat_ours", ours))
    assert found is not None and found.id == made and not found.ended


def test_failed_lines_come_back_failed() -> None:
    state, found, requests = ended_batch(adapter, 3, batch_line_error_rate=1.0)
    assert state.ended and state.failed == 3
    assert (found.bodies, found.failed) == ({}, set(requests))


def test_an_expired_batch_has_no_output() -> None:
    state, found, _ = ended_batch(adapter, 4, batch_expire_rate=1.0)
    assert state.ended and state.status == "BATCH_STATE_EXPIRED"
    assert (found.bodies, found.failed) == ({}, set())  # every line goes back to sync


def test_cancel_ends_the_batch() -> None:
    with simulator(batch_processing_s=3600.0) as client:
        batches, requests = adapter(client), jobs(2)
        made = submit(batches, "t", requests)
        assert not batches.poll(made).ended
        state = batches.cancel(made)
    assert state.ended and state.status == "BATCH_STATE_CANCELLED"


def answers_without_metadata(n: int) -> httpx.MockTransport:
    """A provider whose inlined responses carry no metadata (as some users report)."""
    message = {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}
    item = {"response": {"candidates": [message], "usageMetadata": {"promptTokenCount": 3}}}
    operation = {
        "name": "batches/x",
        "metadata": {"state": "BATCH_STATE_SUCCEEDED"},
        "done": True,
        "response": {"inlinedResponses": {"inlinedResponses": [item] * n}},
    }
    return httpx.MockTransport(lambda request: httpx.Response(200, json=operation))


def test_answers_without_keys_are_matched_by_position_only_when_nothing_moved() -> None:
    requests = jobs(3)
    with httpx.Client(transport=answers_without_metadata(3)) as http:
        batches = adapter(http)
        # Given every line sent is still waiting: answers match by their position
        whole = batches.results("batches/x", None, None, manifest("t", requests))
        # Given one line left the batch meanwhile: positions no longer say whose answer is whose
        moved = Manifest("t", 3, tuple(requests)[1:])
        partial = batches.results("batches/x", None, None, moved)
    assert set(whole.bodies) == set(requests)
    assert (partial.bodies, partial.failed) == ({}, set())
