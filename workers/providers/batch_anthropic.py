"""Anthropic's Message Batches for one deployment: requests inline, results as JSON Lines.

    line(custom_id, request)     ``{"custom_id", "params"}``: params is the Messages body
                                 ``workers.providers.anthropic.build_body`` sends synchronously
    create(None, tag, lines)     POST /messages/batches ``{"requests": [...]}`` (no file step)
    poll(batch_id)               GET /messages/batches/{id}; ended once ``processing_status``
                                 is ``ended``
    results(...)                 GET its ``results_url`` (only if on the deployment's host,
                                 else the documented path): ``succeeded`` lines' messages by
                                 custom id; ``errored``, ``canceled`` and ``expired`` failed
    cancel(batch_id)             POST /messages/batches/{id}/cancel

Finding a batch whose create reply was lost (``find_batch``). Anthropic's batches
carry no metadata, and their custom ids are only readable in the results, once a
batch has ended. So a retried create lists the workspace's batches, newest first,
back to a little before our row was made, and keeps the candidates that
    - carry exactly as many requests as the lost create sent (``request_counts`` sum),
    - are not already recorded by another of our provider batches (``Manifest.taken``);
then an ended candidate is ours only if its results hold every custom id we still
wait for (custom ids are job ids, unique); one candidate still running is taken as
ours; several running ones cannot be told apart yet: ``Unresolved`` (retryable),
and the step is asked again later, when they have ended and their results tell.
A wrong guess cannot write a wrong answer: collecting keeps only results whose
custom id is one of our lines, and sends our unanswered lines back to the
synchronous path. The residual risk is a batch of the same size created in the
same minutes, with the same key, by something other than this Switchyard: give
Switchyard its own workspace (Anthropic lists batches per workspace).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from workers.providers.anthropic import ANTHROPIC_VERSION, build_body, parse_completion
from workers.providers.batch_base import (
    BatchState,
    BatchWire,
    InlineRequests,
    Manifest,
    Results,
    inline_array,
    jsonl_line,
)
from workers.providers.errors import Unresolved
from workers.providers.openai import SIMULATOR_API_KEY

CLOCK_SKEW = timedelta(minutes=10)
# error types that refuse the request itself (canceled, expired, api_error and
# overloaded_error lines may be answered by another batch)
REFUSED = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
    }
)
PAGE = 100
MAX_PAGES = 20


def state_of(data: dict[str, Any]) -> BatchState:
    """A ``BatchState`` from a ``message_batch`` object."""
    counts = data.get("request_counts") or {}
    failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
    status = str(data["processing_status"])
    url = data.get("results_url")
    return BatchState(
        id=str(data["id"]),
        status=status,
        ended=status == "ended",
        output_file_id=str(url) if url and len(str(url)) <= 200 else None,
        completed=int(counts.get("succeeded") or 0),
        failed=failed,
    )


def _size(data: dict[str, Any]) -> int:
    counts = data.get("request_counts") or {}
    return sum(int(v or 0) for v in counts.values())


def _created(data: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))


class AnthropicBatchAdapter(InlineRequests):
    """Speaks Anthropic's Message Batches for one deployment over a shared client."""

    tagged = False  # see BatchAdapter.tagged

    def __init__(self, client: httpx.Client, deployment: Deployment, api_key: str | None) -> None:
        self._dep = deployment
        headers = {
            "x-api-key": api_key or SIMULATOR_API_KEY,
            "anthropic-version": ANTHROPIC_VERSION,
        }
        self._wire = BatchWire(client, deployment, api_key, headers)

    def line(self, custom_id: str, request: JobRequest) -> bytes:
        row = {"custom_id": custom_id, "params": build_body(self._dep, request)}
        return jsonl_line(row)

    def create(self, file_id: str | None, tag: str, lines: Sequence[bytes] = ()) -> BatchState:
        body = b'{"requests":' + inline_array(lines) + b"}"
        headers = {"content-type": "application/json"}
        made = self._wire.send("POST", "/messages/batches", content=body, headers=headers)
        return state_of(made.json())

    def poll(self, batch_id: str) -> BatchState:
        return state_of(self._wire.send("GET", f"/messages/batches/{batch_id}").json())

    def cancel(self, batch_id: str) -> BatchState:
        return state_of(self._wire.send("POST", f"/messages/batches/{batch_id}/cancel").json())

    def parse(self, body: Any, request: JobRequest) -> Completion:
        return parse_completion(body, request)

    def _rows(self, batch_id: str, url: str | None) -> Iterator[dict[str, Any]]:
        if not url or not self._wire.same_origin(url):
            url = f"/messages/batches/{batch_id}/results"  # our key goes to our host only
        text = self._wire.send("GET", url).text
        return (json.loads(row) for row in text.splitlines() if row.strip())

    def results(
        self, batch_id: str, output: str | None, error: str | None, manifest: Manifest
    ) -> Results:
        """Succeeded lines' messages by custom id; the others' custom ids as failed."""
        found = Results()
        for row in self._rows(batch_id, output):
            custom_id, result = row.get("custom_id"), row.get("result") or {}
            if not custom_id:
                continue
            if result.get("type") == "succeeded":
                found.bodies[str(custom_id)] = result.get("message")
            else:
                found.failed.add(str(custom_id))
                why = (result.get("error") or {}).get("error") or {}
                if result.get("type") == "errored" and why.get("type") in REFUSED:
                    found.final.add(str(custom_id))  # the request itself: no retry helps
        return found

    def _recent(self, floor: datetime) -> Iterator[dict[str, Any]]:
        """The workspace's batches created since ``floor``, newest first."""
        after: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": PAGE} | ({"after_id": after} if after else {})
            page = self._wire.send("GET", "/messages/batches", params=params).json()
            for data in page.get("data") or []:
                if _created(data) < floor:
                    return
                yield data
            if not page.get("has_more") or not page.get("last_id"):
                return
            after = str(page["last_id"])

    def find_batch(self, manifest: Manifest) -> BatchState | None:
        """Our batch whose create reply was lost (see the module's docstring), or None."""
        if manifest.since is None or manifest.sent <= 0:
            raise ValueError("finding an Anthropic batch needs when and how much was sent")
        floor = manifest.since - CLOCK_SKEW
        running: list[BatchState] = []
        for data in self._recent(floor):
            if data["id"] in manifest.taken or _size(data) != manifest.sent:
                continue
            state = state_of(data)
            if not state.ended:
                running.append(state)
            elif self._holds(state, manifest.custom_ids):
                return state
        if len(running) > 1:
            said = f"{len(running)} running batches of {manifest.sent} requests"
            raise Unresolved(
                f"{said} could be {manifest.tag}; asked again once they end",
                provider=self._dep.provider,
                model=self._dep.model,
            )
        return running[0] if running else None

    def _holds(self, state: BatchState, custom_ids: Sequence[str]) -> bool:
        seen = {str(row.get("custom_id")) for row in self._rows(state.id, state.output_file_id)}
        return set(custom_ids) <= seen
