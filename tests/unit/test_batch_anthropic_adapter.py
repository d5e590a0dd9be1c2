"""The Anthropic batch adapter against the simulator's Message Batches (in-process).

Each test is a small provider story: the lines ask what the synchronous adapter
asks and their answers read as its answers, at the batch path's price; a create
whose reply was lost is found again (Anthropic batches carry no tag); failed,
expired and cancelled lines come back as failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import anthropic
import httpx
import pytest
from fastapi.testclient import TestClient

from orchestrator.core.schemas import JobRequest
from tests.unit.batch_adapters import (
    assert_answers_read_as_sync,
    ended_batch,
    jobs,
    sim_deployment,
    simulator,
)
from workers.providers.anthropic import AnthropicMessagesAdapter, build_body
from workers.providers.batch_anthropic import AnthropicBatchAdapter
from workers.providers.batch_base import Manifest
from workers.providers.errors import Unresolved

DEPLOYMENT = "sim-claude-sonnet-4"


@pytest.fixture
def slow_sim() -> Iterator[TestClient]:
    with simulator(batch_processing_s=3600.0) as client:
        yield client


def adapter(client: TestClient) -> AnthropicBatchAdapter:
    return AnthropicBatchAdapter(cast(httpx.Client, client), sim_deployment(DEPLOYMENT), None)


def manifest(tag: str, requests: dict[str, JobRequest], **extra: Any) -> Manifest:
    since = datetime.now(UTC) - timedelta(minutes=1)
    return Manifest(tag, len(requests), tuple(requests), since, **extra)


def submit(batches: AnthropicBatchAdapter, requests: dict[str, JobRequest]) -> str:
    lines = [batches.line(cid, r) for cid, r in requests.items()]
    return batches.create(None, "unused", lines).id


def test_lines_ask_and_answers_read_as_the_synchronous_call(sim: TestClient) -> None:
    batches, dep = adapter(sim), sim_deployment(DEPLOYMENT)
    requests = jobs(3)
    # Given lines built by the adapter: each one's params is the synchronous body
    lines = [batches.line(cid, r) for cid, r in requests.items()]
    for row, (cid, request) in zip(lines, requests.items(), strict=True):
        assert httpx.Response(200, content=row).json() == {
            "custom_id": cid,
            "params": build_body(dep, request),
        }
    # When the batch is created, has ended (no processing time) and is read
    made = batches.create(None, "pbat_a", lines)
    state = batches.poll(made.id)
    assert (state.ended, state.status, state.completed) == (True, "ended", 3), state
    found = batches.results(made.id, state.output_file_id, None, manifest("pbat_a", requests))
    # Then every answer parses to what the synchronous adapter gets for the same request,
    # at the catalog's batch price: half the synchronous cost
    sync = AnthropicMessagesAdapter(cast(httpx.Client, sim), None)
    assert_answers_read_as_sync(batches, found, requests, sync, dep)


def test_the_official_sdk_reads_the_batch_the_adapter_made(sim: TestClient) -> None:
    # Given a batch made by the adapter
    requests = jobs(2)
    batch_id = submit(adapter(sim), requests)
    # When the official SDK retrieves it and its results over the same app
    claude = anthropic.Anthropic(
        base_url="http://testserver", api_key="sk-ant-test", http_client=sim, max_retries=0
    )
    batch = claude.messages.batches.retrieve(batch_id)
    results = {r.custom_id: r.result for r in claude.messages.batches.results(batch_id)}
    # Then it parses both, each a succeeded message
    assert batch.processing_status == "ended" and batch.request_counts.succeeded == 2
    assert set(results) == set(requests)
    assert all(r.type == "succeeded" and r.message.content for r in results.values())


def test_a_lost_create_reply_is_found_not_repeated(slow_sim: TestClient) -> None:
    batches = adapter(slow_sim)
    ours = jobs(3)
    # Given nothing made yet: a retry finds nothing, so it may create
    assert batches.find_batch(manifest("pbat_ours", ours)) is None
    # and other batches in the workspace: one of another size, one of ours already recorded
    submit(batches, jobs(2, "other"))
    recorded = submit(batches, jobs(3, "recorded"))
    # When our create reaches the provider but its reply is lost
    made = submit(batches, ours)
    # Then the retry finds that batch (running: its size, not yet recorded by us)
    found = batches.find_batch(manifest("pbat_ours", ours, taken=frozenset({recorded})))
    assert found is not None and found.id == made
    listed = slow_sim.get("/v1/messages/batches", params={"limit": 100}).json()["data"]
    assert len(listed) == 3


def test_running_look_alikes_wait_until_their_results_tell(slow_sim: TestClient) -> None:
    batches = adapter(slow_sim)
    ours = jobs(3)
    # Given a look-alike (same size, not recorded) and ours, both running
    other = submit(batches, jobs(3, "lookalike"))
    made = submit(batches, ours)
    # When the retry looks: it cannot tell them apart, and says so (retryable)
    with pytest.raises(Unresolved) as raised:
        batches.find_batch(manifest("pbat_ours", ours))
    assert raised.value.retryable
    # When both have ended (cancelled), their results name their custom ids
    batches.cancel(other)
    batches.cancel(made)
    found = batches.find_batch(manifest("pbat_ours", ours))
    # Then ours is the one holding our custom ids
    assert found is not None and found.id == made and found.ended


def test_failed_lines_come_back_failed() -> None:
    state, found, requests = ended_batch(adapter, 4, batch_line_error_rate=1.0)
    assert state.ended and state.failed == 4
    assert (found.bodies, found.failed) == ({}, set(requests))


def test_an_expired_batch_answers_its_first_half_only() -> None:
    state, found, requests = ended_batch(adapter, 4, batch_expire_rate=1.0)
    assert state.ended and (state.completed, state.failed) == (2, 2)
    assert len(found.bodies) == 2 and len(found.failed) == 2
    assert set(found.bodies) | found.failed == set(requests)


def test_cancel_ends_the_batch_and_its_lines_fail(slow_sim: TestClient) -> None:
    batches, requests = adapter(slow_sim), jobs(3)
    made = submit(batches, requests)
    assert batches.cancel(made).status == "canceling"
    state = batches.poll(made)
    found = batches.results(made, state.output_file_id, None, manifest("t", requests))
    assert state.ended and (found.bodies, found.failed) == ({}, set(requests))


def test_results_from_another_host_are_read_from_the_deployment_instead() -> None:
    # Given a provider whose results_url names another host
    hosts: list[str] = []

    def provider(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        row = {"custom_id": "job_1", "result": {"type": "expired"}}
        return httpx.Response(200, content=httpx.Response(200, json=row).content + b"\n")

    with httpx.Client(transport=httpx.MockTransport(provider)) as http:
        batches = AnthropicBatchAdapter(http, sim_deployment(DEPLOYMENT), "sk-ant-secret")
        found = batches.results("msgbatch_1", "https://elsewhere.example/r", None, Manifest("t"))
    # Then our key only went to the deployment's host
    assert hosts == ["testserver"] and found.failed == {"job_1"}
