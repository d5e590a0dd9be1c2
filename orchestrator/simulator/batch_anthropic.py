"""Anthropic's Message Batches API in the simulator.

    POST   /v1/messages/batches                ``{"requests": [{"custom_id", "params"}]}``
    GET    /v1/messages/batches/{id}           the ``message_batch`` object
    GET    /v1/messages/batches/{id}/results   JSON Lines, once ``processing_status`` is ``ended``
    POST   /v1/messages/batches/{id}/cancel    ``canceling`` now, ``ended`` on the next read
    DELETE /v1/messages/batches/{id}           an ended batch: ``message_batch_deleted``
    GET    /v1/messages/batches?limit&after_id&before_id   newest first

``custom_id`` must match ``^[a-zA-Z0-9_-]{1,64}$`` and be unique, else the create
request is a 400 naming the request. A request whose ``params`` are not a valid
Messages request is ``errored`` with ``invalid_request_error``, as Anthropic does.
``request_counts`` stay all ``processing`` until the batch ends (Anthropic's rule);
results are ``{"custom_id", "result": {"type": "succeeded", "message"} |
{"type": "errored", "error": {"type": "error", "error": {...}}} | {"type":
"canceled"} | {"type": "expired"}}``. ``results_url`` points at this simulator.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response

from orchestrator.simulator import anthropic_wire
from orchestrator.simulator.batch_store import (
    BatchLine,
    SimBatch,
    batch_seed,
    jsonl,
    now_s,
    processing_s,
    read_json,
    respond,
)
from orchestrator.simulator.wire import SimError

if TYPE_CHECKING:
    from orchestrator.simulator.engine import Engine

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WINDOW_S = 24 * 3600


def _at(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def _line(index: int, item: object, seen: set[str]) -> BatchLine:
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise SimError(400, f"{where}: must be an object with custom_id and params", param=where)
    custom_id, params = item.get("custom_id"), item.get("params")
    if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
        message = f"{where}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
        raise SimError(400, message, param=f"{where}.custom_id")
    if custom_id in seen:
        message = f"{where}.custom_id: {custom_id!r} is not unique in this batch"
        raise SimError(400, message, param=f"{where}.custom_id")
    if not isinstance(params, dict):
        raise SimError(400, f"{where}.params: Field required", param=f"{where}.params")
    seen.add(custom_id)
    try:
        if params.get("stream"):
            raise SimError(400, "params.stream: streaming is not supported in a batch")
        return BatchLine(custom_id, anthropic_wire.parse(params))
    except SimError as exc:
        return BatchLine(custom_id, None, error=exc)


def create(engine: Engine, body: object, headers: Any) -> SimBatch:
    """A new batch from a create request; a 400 ``SimError`` names the bad request."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise SimError(400, "requests: at least one request is required", param="requests")
    seen: set[str] = set()
    lines = [_line(i, item, seen) for i, item in enumerate(requests)]
    models = [line.call.model for line in lines if line.call is not None]
    batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
    batch = SimBatch(batch_id, anthropic_wire, lines, now_s(), processing_s(engine, models))
    batch.expires = engine.batches.picked_to_expire(engine, models, batch_seed(lines), headers)
    return batch


def render(batch: SimBatch, base_url: str, canceling: bool = False) -> dict[str, Any]:
    """The ``message_batch`` object; ``canceling`` for the cancel answer itself."""
    ended = batch.end is not None and not canceling
    tally = batch.tally()
    if not ended:
        tally = {"processing": len(batch.lines), "succeeded": 0, "errored": 0}
        tally |= {"canceled": 0, "expired": 0}
    status = "ended" if ended else "canceling" if batch.cancel_s is not None else "in_progress"
    results = f"{base_url.rstrip('/')}/v1/messages/batches/{batch.id}/results"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": tally,
        "ended_at": _at(batch.ended_s) if ended else None,
        "created_at": _at(batch.created_s),
        "expires_at": _at(batch.created_s + WINDOW_S),
        "archived_at": None,
        "cancel_initiated_at": _at(batch.cancel_s),
        "results_url": results if ended else None,
    }


def _result(line: BatchLine) -> dict[str, Any]:
    if line.answer is not None and line.call is not None:
        message = anthropic_wire.render(line.call, line.answer)
        return {"type": "succeeded", "message": message}
    if line.failure is not None:
        return {"type": "errored", "error": anthropic_wire.error_body(line.failure)}
    return {"type": line.outcome}  # canceled or expired


def results(batch: SimBatch) -> bytes:
    """The results file: one line per request, in request order."""
    return jsonl([{"custom_id": ln.key, "result": _result(ln)} for ln in batch.lines])


def _error(exc: SimError) -> Response:
    return respond(anthropic_wire.error_body(exc), exc.status)


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise SimError(400, "limit: must be an integer from 1 to 1000", param="limit")
    return int(value)


def add_routes(app: FastAPI, engine: Engine) -> None:
    """Mount the Message Batches API."""
    _add_batch_routes(app, engine)
    _add_read_routes(app, engine)


def _found(engine: Engine, batch_id: str) -> SimBatch:
    batch = engine.batches.get(batch_id, anthropic_wire)
    engine.batches.refresh(batch, now_s(), engine)
    return batch


def _add_batch_routes(app: FastAPI, engine: Engine) -> None:
    @app.post("/v1/messages/batches")
    async def create_batch(request: Request) -> Response:
        """Create a Message Batch."""
        try:
            batch = create(engine, await read_json(request), request.headers)
            engine.batches.add(batch, engine)
        except SimError as exc:
            return _error(exc)
        return respond(render(batch, str(request.base_url)))

    @app.get("/v1/messages/batches/{batch_id}")
    async def retrieve_batch(batch_id: str, request: Request) -> Response:
        """The batch, as of now."""
        try:
            return respond(render(_found(engine, batch_id), str(request.base_url)))
        except SimError as exc:
            return _error(exc)

    @app.post("/v1/messages/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str, request: Request) -> Response:
        """Cancel the batch (an ended batch comes back as it is)."""
        try:
            batch = _found(engine, batch_id)
            canceling = engine.batches.cancel(batch, now_s(), engine)
        except SimError as exc:
            return _error(exc)
        return respond(render(batch, str(request.base_url), canceling=canceling))

    @app.delete("/v1/messages/batches/{batch_id}")
    async def delete_batch(batch_id: str) -> Response:
        """Delete an ended batch and its results."""
        try:
            batch = _found(engine, batch_id)
            if batch.end is None:
                raise SimError(400, f"Batch {batch_id} is still processing; cancel it first.")
        except SimError as exc:
            return _error(exc)
        engine.batches.remove(batch_id)
        return respond({"id": batch_id, "type": "message_batch_deleted"})


def _add_read_routes(app: FastAPI, engine: Engine) -> None:
    @app.get("/v1/messages/batches/{batch_id}/results")
    async def batch_results(batch_id: str) -> Response:
        """The results, once the batch has ended."""
        try:
            batch = _found(engine, batch_id)
            if batch.end is None:
                raise SimError(400, f"Batch {batch_id} is still processing; no results yet.")
        except SimError as exc:
            return _error(exc)
        return Response(results(batch), media_type="application/binary")

    @app.get("/v1/messages/batches")
    async def list_batches(
        request: Request,
        limit: str | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> Response:
        """Batches, newest first."""
        try:
            size = _limit(limit)
        except SimError as exc:
            return _error(exc)
        page, more = engine.batches.page(anthropic_wire, size, after=after_id, before=before_id)
        now, base = now_s(), str(request.base_url)
        for batch in page:
            engine.batches.refresh(batch, now, engine)
        data = [render(b, base) for b in page]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return respond({"data": data, "has_more": more, "first_id": first, "last_id": last})
