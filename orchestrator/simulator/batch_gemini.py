"""Gemini's batch mode in the simulator (inlined requests), as long-running operations.

    POST   /v1beta/models/{model}:batchGenerateContent   ``{"batch": {"display_name",
           "input_config": {"requests": {"requests": [{"request", "metadata"}]}}}}``
           (camelCase ``displayName``/``inputConfig`` too); answers the operation
    GET    /v1beta/batches/{id}                           the operation, as of now
    POST   /v1beta/batches/{id}:cancel                    ``{}``
    DELETE /v1beta/batches/{id}                           ``{}``
    GET    /v1beta/batches?pageSize&pageToken             ``{"operations", "nextPageToken"}``

The operation is ``{"name": "batches/<id>", "metadata": {"@type": ...GenerateContentBatch,
"model", "displayName", "createTime", "updateTime", "batchStats", "state", "name"},
"done"}``; ``state`` goes ``BATCH_STATE_PENDING`` (the create answer), ``_RUNNING``,
then ``_SUCCEEDED``, ``_EXPIRED`` or ``_CANCELLED``. A succeeded batch carries its
output in ``metadata.output`` and in ``response`` (``@type`` ...GenerateContentBatchOutput):
``inlinedResponses.inlinedResponses[]``, in request order, each ``{"response"}`` or
``{"error": {code, message}}`` (gRPC codes) with the request's ``metadata``.
``batchStats`` counts are int64 strings, zeros left out (proto3 JSON). An expired or
cancelled batch has no output (Gemini keeps none) and an ``error``; a ``fileName``
input is refused (the simulator takes inlined requests only).
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response

from orchestrator.simulator import gemini_wire
from orchestrator.simulator.batch_store import (
    BatchLine,
    SimBatch,
    batch_seed,
    now_s,
    processing_s,
    read_json,
    respond,
)
from orchestrator.simulator.wire import SimError

if TYPE_CHECKING:
    from orchestrator.simulator.engine import Engine

TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14, 504: 4, 529: 14}
ENDED = {
    "completed": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "expired": "BATCH_STATE_EXPIRED",
    "cancelled": "BATCH_STATE_CANCELLED",
}
_OP_ERRORS = {
    "expired": {"code": 4, "message": "The batch expired before it finished."},
    "cancelled": {"code": 1, "message": "The batch was cancelled."},
}
_ID_CHARS = string.ascii_lowercase + string.digits


def _at(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")
    return moment.replace("+00:00", "Z")


def _pick(mapping: dict[str, Any], snake: str, camel: str) -> Any:
    return mapping.get(snake, mapping.get(camel))


def _requests(batch: object) -> tuple[str, list[Any]]:
    """(display name, inlined requests) of a create body's ``batch``."""
    if not isinstance(batch, dict):
        raise SimError(400, "* batch: a batch object is required", param="batch")
    name = _pick(batch, "display_name", "displayName")
    if not isinstance(name, str) or not name:
        raise SimError(400, "* batch.display_name: a display name is required")
    config = _pick(batch, "input_config", "inputConfig")
    if isinstance(config, dict) and _pick(config, "file_name", "fileName"):
        raise SimError(400, "* batch.input_config: the simulator takes inlined requests only")
    holder = config.get("requests") if isinstance(config, dict) else None
    items = holder.get("requests") if isinstance(holder, dict) else None
    if not isinstance(items, list) or not items:
        raise SimError(400, "* batch.input_config.requests.requests: no requests were given")
    return name, items


def _line(index: int, item: object, model: str) -> BatchLine:
    if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
        where = f"batch.input_config.requests.requests[{index}]"
        raise SimError(400, f"* {where}.request: a GenerateContentRequest is required")
    key = f"{index}"
    try:
        call = gemini_wire.parse(item["request"], model)
        return BatchLine(key, call, extra=item.get("metadata"))
    except SimError as exc:
        return BatchLine(key, None, error=exc, extra=item.get("metadata"))


def create(engine: Engine, model: str, body: object, headers: Any) -> SimBatch:
    """A new batch of ``model`` from a create body; a 400 ``SimError`` says what is wrong."""
    model = model.removeprefix("models/")
    name, items = _requests(body.get("batch") if isinstance(body, dict) else None)
    lines = [_line(i, item, model) for i, item in enumerate(items)]
    batch_id = "batches/" + "".join(secrets.choice(_ID_CHARS) for _ in range(36))
    batch = SimBatch(batch_id, gemini_wire, lines, now_s(), processing_s(engine, [model]))
    batch.keeps_partial = False
    batch.meta = {"model": model, "display_name": name}
    seed = batch_seed(lines)
    batch.expires = engine.batches.picked_to_expire(engine, [model], seed, headers)
    return batch


def _stats(batch: SimBatch) -> dict[str, str]:
    tally = batch.tally()
    failed = tally["errored"] + (tally["expired"] + tally["canceled"])
    counts = {
        "requestCount": len(batch.lines),
        "successfulRequestCount": tally["succeeded"],
        "failedRequestCount": failed if batch.end is not None else 0,
        "pendingRequestCount": tally["processing"],
    }
    return {key: str(value) for key, value in counts.items() if value}


def _inlined(line: BatchLine) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if line.answer is not None and line.call is not None:
        item["response"] = gemini_wire.render(line.call, line.answer)
    elif line.failure is not None:
        code = GRPC.get(line.failure.status, 2)
        item["error"] = {"code": code, "message": line.failure.message}
    if line.extra is not None:
        item["metadata"] = line.extra
    return item


def render(batch: SimBatch, pending: bool = False) -> dict[str, Any]:
    """The batch's operation; ``pending`` for the create answer."""
    state = ENDED[batch.end] if batch.end else "BATCH_STATE_RUNNING"
    state = "BATCH_STATE_PENDING" if pending else state
    updated = batch.ended_s or batch.created_s
    metadata: dict[str, Any] = {
        "@type": TYPES + "GenerateContentBatch",
        "model": f"models/{batch.meta['model']}",
        "displayName": batch.meta["display_name"],
        "createTime": _at(batch.created_s),
        "updateTime": _at(updated),
        "batchStats": _stats(batch),
        "state": state,
        "name": batch.id,
    }
    operation: dict[str, Any] = {"name": batch.id, "metadata": metadata}
    if batch.end is None or pending:
        return operation
    metadata["endTime"] = _at(updated)
    operation["done"] = True
    if batch.end == "completed":
        output = {"inlinedResponses": {"inlinedResponses": [_inlined(ln) for ln in batch.lines]}}
        metadata["output"] = output
        operation["response"] = {"@type": TYPES + "GenerateContentBatchOutput", **output}
    else:
        operation["error"] = _OP_ERRORS.get(batch.end, {"code": 13, "message": "failed"})
    return operation


def _error(exc: SimError) -> Response:
    return respond(gemini_wire.error_body(exc), exc.status)


def _page_size(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise SimError(400, "pageSize must be an integer from 1 to 1000", param="pageSize")
    return int(value)


def add_routes(app: FastAPI, engine: Engine) -> None:
    """Mount batch mode (before the catch-all ``/{version}/models/{target}`` route)."""
    _add_batch_routes(app, engine)
    _add_list_route(app, engine)


def _found(engine: Engine, batch_id: str) -> SimBatch:
    batch = engine.batches.get(f"batches/{batch_id}", gemini_wire)
    engine.batches.refresh(batch, now_s(), engine)
    return batch


def _add_batch_routes(app: FastAPI, engine: Engine) -> None:
    @app.post("/v1beta/models/{model}:batchGenerateContent")
    async def create_batch(model: str, request: Request) -> Response:
        """Enqueue a batch of ``generateContent`` requests."""
        try:
            batch = create(engine, model, await read_json(request), request.headers)
            engine.batches.add(batch, engine)
        except SimError as exc:
            return _error(exc)
        return respond(render(batch, pending=True))

    @app.get("/v1beta/batches/{batch_id}")
    async def get_batch(batch_id: str) -> Response:
        """The batch's operation, as of now."""
        try:
            return respond(render(_found(engine, batch_id)))
        except SimError as exc:
            return _error(exc)

    @app.post("/v1beta/batches/{batch_id}:cancel")
    async def cancel_batch(batch_id: str) -> Response:
        """Cancel the batch (``{}``, as Google answers)."""
        try:
            engine.batches.cancel(_found(engine, batch_id), now_s(), engine)
        except SimError as exc:
            return _error(exc)
        return respond({})

    @app.delete("/v1beta/batches/{batch_id}")
    async def delete_batch(batch_id: str) -> Response:
        """Forget the batch (it is not cancelled)."""
        try:
            _found(engine, batch_id)
        except SimError as exc:
            return _error(exc)
        engine.batches.remove(f"batches/{batch_id}")
        return respond({})


def _add_list_route(app: FastAPI, engine: Engine) -> None:
    @app.get("/v1beta/batches")
    async def list_batches(pageSize: str | None = None, pageToken: str | None = None) -> Response:
        """Operations, newest first; ``nextPageToken`` is the last one's name."""
        try:
            size = _page_size(pageSize)
        except SimError as exc:
            return _error(exc)
        page, more = engine.batches.page(gemini_wire, size, after=pageToken or None)
        now = now_s()
        for batch in page:
            engine.batches.refresh(batch, now, engine)
        body: dict[str, Any] = {"operations": [render(b) for b in page]}
        if more and page:
            body["nextPageToken"] = page[-1].id
        return respond(body)
