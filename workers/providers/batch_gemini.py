"""Gemini's batch mode for one deployment: inlined requests, a long-running operation.

    line(custom_id, request)     ``{"request", "metadata": {"key": custom_id}}``: request is
                                 the body ``workers.providers.gemini.build_body`` sends to
                                 ``generateContent`` synchronously
    create(None, tag, lines)     POST models/{model}:batchGenerateContent ``{"batch":
                                 {"display_name": tag, "input_config": {"requests":
                                 {"requests": [...]}}}}`` -> the operation ``batches/<id>``
    find_batch(manifest)         GET batches (pages): the operation whose ``displayName``
                                 is our tag, so a lost create reply is found, not repeated
    poll(batch_id)               GET {batch_id}: ``metadata.state`` BATCH_STATE_*; ended
                                 once SUCCEEDED, FAILED, CANCELLED or EXPIRED (or ``done``)
    results(...)                 the succeeded operation's ``inlinedResponses``: each
                                 ``response`` by custom id, each ``error`` failed
    cancel(batch_id)             POST {batch_id}:cancel, then the operation as it is

Batch mode lives under ``v1beta`` only, so a base URL ending in ``/v1`` is spoken
to at ``/v1beta`` for batches. Inlined requests may total 20 MB (the catalog's
``batch.max_bytes`` keeps under it). Responses come in request order, and carry
the request's ``metadata`` (as documented; some users report it missing): an
answer is matched by ``metadata.key``, or else by its position, but only when
every line sent is still waiting and the counts agree; otherwise it is not used
and its line goes back to the synchronous path. An expired or cancelled batch
has no output at all: every line goes back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from workers.providers.batch_base import (
    BatchState,
    BatchWire,
    InlineRequests,
    Manifest,
    Results,
    inline_array,
    jsonl_line,
)
from workers.providers.gemini import build_body, parse_completion
from workers.providers.openai import SIMULATOR_API_KEY

ENDED = frozenset(
    {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
)
PAGE = 100
MAX_PAGES = 20
# google.rpc codes that refuse the request itself: INVALID_ARGUMENT, NOT_FOUND,
# PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED, UNAUTHENTICATED
REFUSED = frozenset({3, 5, 7, 9, 11, 12, 16})


def batch_root(base_url: str) -> str:
    """Where batch mode is served: the base URL, at ``v1beta`` if it named ``v1``."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] + "/v1beta" if base.endswith("/v1") else base


def state_of(operation: dict[str, Any]) -> BatchState:
    """A ``BatchState`` from a batch's operation."""
    meta = operation.get("metadata") or {}
    status = str(meta.get("state") or "BATCH_STATE_UNSPECIFIED")
    stats = meta.get("batchStats") or {}
    return BatchState(
        id=str(operation.get("name") or meta.get("name")),
        status=status,
        ended=status in ENDED or bool(operation.get("done")),
        completed=int(stats.get("successfulRequestCount") or 0),
        failed=int(stats.get("failedRequestCount") or 0),
    )


def _responses(operation: dict[str, Any]) -> list[dict[str, Any]]:
    output = operation.get("response") or (operation.get("metadata") or {}).get("output") or {}
    holder = output.get("inlinedResponses") or {}
    items = holder.get("inlinedResponses") if isinstance(holder, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]


class GeminiBatchAdapter(InlineRequests):
    """Speaks Gemini's batch mode for one deployment over a shared client."""

    tagged = True  # see BatchAdapter.tagged

    def __init__(self, client: httpx.Client, deployment: Deployment, api_key: str | None) -> None:
        self._dep = deployment
        headers = {"x-goog-api-key": api_key or SIMULATOR_API_KEY}
        root = batch_root(deployment.base_url)
        self._wire = BatchWire(client, deployment, api_key, headers, base=root)

    def line(self, custom_id: str, request: JobRequest) -> bytes:
        row = {"request": build_body(self._dep, request), "metadata": {"key": custom_id}}
        return jsonl_line(row)

    def create(self, file_id: str | None, tag: str, lines: Sequence[bytes] = ()) -> BatchState:
        name = json.dumps(tag).encode()
        body = (
            b'{"batch":{"display_name":' + name
            + b',"input_config":{"requests":{"requests":' + inline_array(lines) + b"}}}}"
        )  # fmt: skip
        path = f"/models/{self._dep.model}:batchGenerateContent"
        made = self._wire.send(
            "POST", path, content=body, headers={"content-type": "application/json"}
        )
        return state_of(made.json())

    def find_batch(self, manifest: Manifest) -> BatchState | None:
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"pageSize": PAGE} | ({"pageToken": token} if token else {})
            page = self._wire.send("GET", "/batches", params=params).json()
            for operation in page.get("operations") or []:
                if (operation.get("metadata") or {}).get("displayName") == manifest.tag:
                    return state_of(operation)
            token = page.get("nextPageToken")
            if not token:
                return None
        return None

    def _operation(self, batch_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._wire.send("GET", f"/{batch_id}").json()
        return found

    def poll(self, batch_id: str) -> BatchState:
        return state_of(self._operation(batch_id))

    def cancel(self, batch_id: str) -> BatchState:
        self._wire.send("POST", f"/{batch_id}:cancel")
        return self.poll(batch_id)

    def parse(self, body: Any, request: JobRequest) -> Completion:
        return parse_completion(body, request)

    def results(
        self, batch_id: str, output: str | None, error: str | None, manifest: Manifest
    ) -> Results:
        """Each inlined response by its custom id (see the module's docstring)."""
        items = _responses(self._operation(batch_id))
        in_order = len(items) == manifest.sent == len(manifest.custom_ids)
        found = Results()
        for index, item in enumerate(items):
            key = (item.get("metadata") or {}).get("key")
            if key is None and in_order:
                key = manifest.custom_ids[index]
            if key is None:
                continue
            if isinstance(item.get("response"), dict):
                found.bodies[str(key)] = item["response"]
            else:
                found.failed.add(str(key))
                if (item.get("error") or {}).get("code") in REFUSED:
                    found.final.add(str(key))  # the request itself: no retry helps
        return found
