"""OpenAI's Batch API (Files + Batches) for one deployment: upload, create, poll, read.

    find_file(name)              our input file if an earlier try uploaded it
    upload(name, lines)          POST /files (multipart, purpose=batch) -> file id
    find_batch(tag)              our batch if an earlier try created it (metadata)
    create(file_id, tag)         POST /batches {input_file_id, endpoint, completion_window,
                                 metadata: {switchyard_batch: tag}} -> ``BatchState``
    poll(batch_id)               GET /batches/{id} -> ``BatchState``
    read(file_id)                GET /files/{id}/content -> its JSON Lines, decoded
    cancel(batch_id)             POST /batches/{id}/cancel

``find_file`` and ``find_batch`` are what make a retried step idempotent: the
store writes ``uploading``/``submitting`` before the call, and a worker that died
after the provider acted finds the file or batch instead of making a second.
A line is the chat-completions body ``workers.providers.openai.build_body`` sends
synchronously, so both paths ask the same question.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import JobRequest
from workers.providers.errors import error_from_response, error_from_transport
from workers.providers.openai import SIMULATOR_API_KEY, build_body

ENDPOINT = "/v1/chat/completions"
TAG = "switchyard_batch"
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchState:
    """What the provider says of a batch: its id, status and result files."""

    id: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    completed: int = 0
    failed: int = 0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @classmethod
    def of(cls, data: dict[str, Any]) -> BatchState:
        counts = data.get("request_counts") or {}
        return cls(
            str(data["id"]),
            str(data["status"]),
            data.get("output_file_id"),
            data.get("error_file_id"),
            int(counts.get("completed") or 0),
            int(counts.get("failed") or 0),
        )


def line(deployment: Deployment, custom_id: str, request: JobRequest) -> bytes:
    """One input line: the synchronous body under the line's ``custom_id``."""
    body = build_body(deployment, request)
    row = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


class OpenAIBatchAdapter:
    """Speaks OpenAI's Files and Batches endpoints for one deployment over a shared client."""

    def __init__(self, client: httpx.Client, deployment: Deployment, api_key: str | None) -> None:
        self._client = client
        self._dep = deployment
        self._api_key = api_key
        self._base = deployment.base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key or SIMULATOR_API_KEY}"}

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(
                method, f"{self._base}{path}", headers=self._headers, **kwargs
            )
        except httpx.TransportError as exc:
            raise error_from_transport(
                exc, provider=self._dep.provider, model=self._dep.model, api_key=self._api_key
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(
                response, provider=self._dep.provider, model=self._dep.model, api_key=self._api_key
            )
        return response

    def find_file(self, name: str) -> str | None:
        listed = self._send("GET", "/files", params={"purpose": "batch"}).json()
        found = [f["id"] for f in listed.get("data") or [] if f.get("filename") == name]
        return str(found[0]) if found else None

    def upload(self, name: str, lines: Sequence[bytes]) -> str:
        files = {"file": (name, b"".join(lines), "application/jsonl")}
        made = self._send("POST", "/files", files=files, data={"purpose": "batch"}).json()
        return str(made["id"])

    def find_batch(self, tag: str) -> BatchState | None:
        listed = self._send("GET", "/batches", params={"limit": 100}).json()
        for data in listed.get("data") or []:
            if (data.get("metadata") or {}).get(TAG) == tag:
                return BatchState.of(data)
        return None

    def create(self, file_id: str, tag: str) -> BatchState:
        body = {
            "input_file_id": file_id,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {TAG: tag},
        }
        return BatchState.of(self._send("POST", "/batches", json=body).json())

    def poll(self, batch_id: str) -> BatchState:
        return BatchState.of(self._send("GET", f"/batches/{batch_id}").json())

    def read(self, file_id: str) -> list[dict[str, Any]]:
        text = self._send("GET", f"/files/{file_id}/content").text
        return [json.loads(row) for row in text.splitlines() if row.strip()]

    def cancel(self, batch_id: str) -> BatchState:
        return BatchState.of(self._send("POST", f"/batches/{batch_id}/cancel").json())
