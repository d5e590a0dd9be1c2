"""The OpenAI batch adapter against the simulator's Files and Batches endpoints (in-process)."""

from __future__ import annotations

from typing import cast

import httpx
from fastapi.testclient import TestClient

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.simulator.app import create_simulator_app
from workers.providers.batch_base import Manifest
from workers.providers.batch_openai import OpenAIBatchAdapter, line
from workers.providers.openai import parse_completion


def adapter(client: TestClient) -> OpenAIBatchAdapter:
    catalog = load_catalog(Settings(simulator_url="http://testserver/v1"))
    http = cast(httpx.Client, client)  # a TestClient is an httpx.Client on the ASGI app
    return OpenAIBatchAdapter(http, catalog.get("sim-gpt-4o-mini"), None)


def test_upload_create_poll_read_and_find_again() -> None:
    with TestClient(create_simulator_app()) as client:
        batches = adapter(client)
        dep = load_catalog(Settings(simulator_url="http://testserver/v1")).get("sim-gpt-4o-mini")
        requests = {f"job_{i}": JobRequest(prompt=f"Say {i}.") for i in range(3)}
        lines = [line(dep, cid, r) for cid, r in requests.items()]
        # Given a file uploaded under our deterministic name and a batch tagged with our id
        assert batches.find_file("pbat_x.jsonl") is None
        file_id = batches.upload("pbat_x.jsonl", lines)
        assert batches.find_batch(Manifest("pbat_x")) is None
        made = batches.create(file_id, "pbat_x")
        # Then a retried step finds both instead of making a second
        assert batches.find_file("pbat_x.jsonl") == file_id
        found = batches.find_batch(Manifest("pbat_x"))
        assert found is not None and found.id == made.id
        # When the batch has ended (no processing time configured)
        state = batches.poll(made.id)
        assert state.ended and state.status == "completed", state
        assert state.output_file_id is not None
        # Then every line's answer parses as a synchronous answer would
        rows = batches.read(state.output_file_id)
        assert sorted(r["custom_id"] for r in rows) == sorted(requests)
        for row in rows:
            done = parse_completion(row["response"]["body"], requests[row["custom_id"]])
            assert done.text and done.usage.output_tokens > 0
        # and ``results`` gives the same bodies by custom id, nothing failed
        found = batches.results(made.id, state.output_file_id, None, Manifest("pbat_x"))
        texts = {
            cid: body["choices"][0]["message"]["content"] for cid, body in found.bodies.items()
        }
        assert texts == {
            r["custom_id"]: r["response"]["body"]["choices"][0]["message"]["content"] for r in rows
        }
        assert not found.failed
