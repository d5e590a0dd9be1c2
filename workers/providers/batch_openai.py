"""OpenAI's Batch API (Files + Batches) for one deployment: upload, create, poll, read.

    find_file(name)              our input file if an earlier try uploaded it
    upload(name, lines)          POST /files (multipart, purpose=batch) -> file id
    find_batch(manifest)         our batch if an earlier try created it (metadata)
    create(file_id, tag)         POST /batches {input_file_id, endpoint, completion_window,
                                 metadata: {switchyard_batch: tag}} -> ``BatchState``
    poll(batch_id)               GET /batches/{id} -> ``BatchState``
    read(file_id)                GET /files/{id}/content -> its JSON Lines, decoded
    results(...)                 the output file's 200 answers and the failed custom ids
    cancel(batch_id)             POST /batches/{id}/cancel

``find_file`` and ``find_batch`` are what make a retried step idempotent: the
store writes ``uploading``/``submitting`` before the call, and a worker that died
after the provider acted finds the file or batch instead of making a second.
A line is the chat-completions body ``workers.providers.openai.build_body`` sends
synchronously, so both paths ask the same question; ``parse`` is its parser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from workers.providers.batch_base import BatchState, BatchWire, Manifest, Results, jsonl_line
from workers.providers.openai import SIMULATOR_API_KEY, build_body, parse_completion

ENDPOINT = "/v1/chat/completions"
TAG = "switchyard_batch"
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


def state_of(data: dict[str, Any]) -> BatchState:
    """A ``BatchState`` from OpenAI's batch object."""
    counts = data.get("request_counts") or {}
    return BatchState(
        id=str(data["id"]),
        status=str(data["status"]),
        ended=str(data["status"]) in ENDED,
        output_file_id=data.get("output_file_id"),
        error_file_id=data.get("error_file_id"),
        completed=int(counts.get("completed") or 0),
        failed=int(counts.get("failed") or 0),
    )


def line(deployment: Deployment, custom_id: str, request: JobRequest) -> bytes:
    """One input line: the synchronous body under the line's ``custom_id``."""
    body = build_body(deployment, request)
    row = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return jsonl_line(row)


def refused(status: Any) -> bool:
    """Whether a line's HTTP status says the request itself was refused (a 4xx other
    than timeout, conflict and rate limit): asking again would not help."""
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)


class OpenAIBatchAdapter:
    """Speaks OpenAI's Files and Batches endpoints for one deployment over a shared client."""

    uploads = True
    tagged = True  # see BatchAdapter.tagged

    def __init__(self, client: httpx.Client, deployment: Deployment, api_key: str | None) -> None:
        self._dep = deployment
        headers = {"Authorization": f"Bearer {api_key or SIMULATOR_API_KEY}"}
        self._wire = BatchWire(client, deployment, api_key, headers)

    def line(self, custom_id: str, request: JobRequest) -> bytes:
        return line(self._dep, custom_id, request)

    def find_file(self, name: str) -> str | None:
        listed = self._wire.send("GET", "/files", params={"purpose": "batch"}).json()
        found = [f["id"] for f in listed.get("data") or [] if f.get("filename") == name]
        return str(found[0]) if found else None

    def upload(self, name: str, lines: Sequence[bytes]) -> str:
        files = {"file": (name, b"".join(lines), "application/jsonl")}
        made = self._wire.send("POST", "/files", files=files, data={"purpose": "batch"}).json()
        return str(made["id"])

    def find_batch(self, manifest: Manifest) -> BatchState | None:
        listed = self._wire.send("GET", "/batches", params={"limit": 100}).json()
        for data in listed.get("data") or []:
            if (data.get("metadata") or {}).get(TAG) == manifest.tag:
                return state_of(data)
        return None

    def create(self, file_id: str | None, tag: str, lines: Sequence[bytes] = ()) -> BatchState:
        if file_id is None:
            raise ValueError("OpenAI's Batch API creates a batch from an uploaded file")
        body = {
            "input_file_id": file_id,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {TAG: tag},
        }
        return state_of(self._wire.send("POST", "/batches", json=body).json())

    def poll(self, batch_id: str) -> BatchState:
        return state_of(self._wire.send("GET", f"/batches/{batch_id}").json())

    def read(self, file_id: str) -> list[dict[str, Any]]:
        text = self._wire.send("GET", f"/files/{file_id}/content").text
        return [json.loads(row) for row in text.splitlines() if row.strip()]

    def results(
        self, batch_id: str, output: str | None, error: str | None, manifest: Manifest
    ) -> Results:
        """Answer bodies by custom id (status 200 only), and the custom ids that failed."""
        found = Results()
        for row in self.read(output) if output else []:
            response = row.get("response") or {}
            if response.get("status_code") == 200 and row.get("custom_id"):
                found.bodies[str(row["custom_id"])] = response.get("body")
            elif row.get("custom_id"):
                found.failed.add(str(row["custom_id"]))
                if refused(response.get("status_code")):
                    found.final.add(str(row["custom_id"]))
        for row in self.read(error) if error else []:
            if row.get("custom_id"):
                found.failed.add(str(row["custom_id"]))
                if refused((row.get("response") or {}).get("status_code")):
                    found.final.add(str(row["custom_id"]))
        found.failed -= set(found.bodies)
        found.final &= found.failed
        return found

    def parse(self, body: Any, request: JobRequest) -> Completion:
        return parse_completion(body, request)

    def cancel(self, batch_id: str) -> BatchState:
        return state_of(self._wire.send("POST", f"/batches/{batch_id}/cancel").json())
