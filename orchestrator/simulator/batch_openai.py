"""OpenAI's Batch API in the simulator (with the Files API of ``simulator.batch_files``).

    POST /v1/batches               ``input_file_id``, ``endpoint`` (``/v1/chat/completions``),
                                   ``completion_window`` (``24h``), ``metadata``
    GET  /v1/batches/{id}          the batch object
    POST /v1/batches/{id}/cancel   ``cancelling`` now, ``cancelled`` on the next read
    GET  /v1/batches?limit&after   newest first

A batch reads its input file at once (``simulator.batch_input``): a malformed
file makes the batch ``failed`` with ``errors.data``, as OpenAI's validation does;
a line whose body is not a valid chat-completions request gets a 400 in the error
file. Statuses: ``validating``
(the create answer), ``in_progress``, ``finalizing``, then ``completed``,
``expired`` or ``cancelled``. The output file holds ``{"id", "custom_id",
"response": {"status_code": 200, "request_id", "body": <chat.completion>}, "error":
null}``; the error file holds failed lines (their status and error body) and the
lines an expiry or a cancel left unfinished (``response: null``, ``error: {"code":
"batch_expired" | "batch_cancelled", "message"}``). File ids: ``file-out-<hex>``,
``file-err-<hex>`` for batch ``batch_<hex>``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response

from orchestrator.simulator import openai_wire
from orchestrator.simulator.batch_files import add_file_routes
from orchestrator.simulator.batch_input import ENDPOINT, InvalidFile, parse_lines
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
from orchestrator.simulator.wire import SimError, seed_of

if TYPE_CHECKING:
    from orchestrator.simulator.engine import Engine

WINDOW_S = 24 * 3600
_UNFINISHED = {
    "expired": ("batch_expired", "Not executed before the completion window expired."),
    "canceled": ("batch_cancelled", "Not executed: the batch was cancelled."),
}


def _metadata(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    pairs = value.items() if isinstance(value, dict) and len(value) <= 16 else [(0, 0)]
    clean = {k: v for k, v in pairs if isinstance(k, str) and isinstance(v, str)}
    if len(clean) != len(pairs) or any(len(k) > 64 or len(v) > 512 for k, v in clean.items()):
        message = "metadata: at most 16 string pairs (keys to 64, values to 512 characters)"
        raise SimError(400, message, param="metadata")
    return clean


def create(engine: Engine, body: object, headers: Any) -> SimBatch:
    """A new batch from a create request; a 4xx ``SimError`` names the bad field."""
    if not isinstance(body, dict):
        raise SimError(400, "The request body must be a JSON object.")
    file_id = body.get("input_file_id")
    sim_file = engine.files.get(file_id) if isinstance(file_id, str) else None
    if sim_file is None or sim_file.purpose != "batch":
        raise SimError(400, f"Invalid 'input_file_id': {file_id!r}.", param="input_file_id")
    if body.get("endpoint") != ENDPOINT:
        raise SimError(400, f"'endpoint' must be {ENDPOINT!r} in the simulator.", param="endpoint")
    if body.get("completion_window") != "24h":
        raise SimError(400, "'completion_window' must be '24h'.", param="completion_window")
    meta = {"input_file_id": file_id, "metadata": _metadata(body.get("metadata")), "errors": None}
    batch = SimBatch(f"batch_{uuid.uuid4().hex}", openai_wire, [], now_s(), 0.0, meta=meta)
    try:
        batch.lines = parse_lines(sim_file.data)
    except InvalidFile as exc:
        batch.meta["errors"] = exc.errors
        batch.end, batch.ended_s = "failed", batch.created_s
        return batch
    models = [line.call.model for line in batch.lines if line.call is not None]
    batch.meta["model"] = models[0] if models else None
    batch.processing_s = processing_s(engine, models)
    seed = batch_seed(batch.lines)
    batch.expires = engine.batches.picked_to_expire(engine, models, seed, headers)
    return batch


def _hex(batch: SimBatch) -> str:
    return batch.id.removeprefix("batch_")


def _status(batch: SimBatch, now: float) -> str:
    if batch.end is not None:
        return batch.end
    return "finalizing" if now >= batch.finalizing_s else "in_progress"


def _usage(batch: SimBatch) -> dict[str, Any]:
    done = [line for line in batch.lines if line.answer is not None and line.call is not None]
    prompt = sum(line.call.prompt_tokens for line in done if line.call)
    output = sum(line.answer.output_tokens for line in done if line.answer)
    reasoning = sum(line.answer.reasoning_tokens for line in done if line.answer)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }


def render(batch: SimBatch, now: float, status: str | None = None) -> dict[str, Any]:
    """The batch object; ``status`` overrides the computed one (create and cancel answers)."""
    status = status or _status(batch, now)
    tally = batch.tally()
    ended = batch.end if status == batch.end else None
    at = None if batch.ended_s is None else int(batch.ended_s)
    errors = batch.meta["errors"]
    failed_lines = tally["errored"] + tally["expired"] + tally["canceled"]
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "model": batch.meta.get("model"),
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": batch.meta["input_file_id"],
        "completion_window": "24h",
        "status": status,
        "output_file_id": f"file-out-{_hex(batch)}" if ended and tally["succeeded"] else None,
        "error_file_id": f"file-err-{_hex(batch)}" if ended and failed_lines else None,
        "created_at": int(batch.created_s),
        "in_progress_at": None if status in ("validating", "failed") else int(batch.created_s),
        "expires_at": int(batch.created_s) + WINDOW_S,
        "finalizing_at": int(batch.finalizing_s) if status in ("finalizing", "completed") else None,
        "completed_at": at if ended == "completed" else None,
        "failed_at": at if ended == "failed" else None,
        "expired_at": at if ended == "expired" else None,
        "cancelling_at": int(batch.cancel_s) if batch.cancel_s is not None else None,
        "cancelled_at": at if ended == "cancelled" else None,
        "request_counts": {
            "total": len(batch.lines),
            "completed": tally["succeeded"],
            "failed": tally["errored"],
        },
        "metadata": batch.meta["metadata"],
        "usage": _usage(batch),
    }


def _result_line(batch: SimBatch, index: int, line: BatchLine) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"batch_req_{seed_of(batch.id, index):016x}",
        "custom_id": line.key,
        "response": None,
        "error": None,
    }
    request_id = f"req_{seed_of(batch.id, index, 'request'):016x}"
    if line.answer is not None and line.call is not None:
        body = openai_wire.render(line.call, line.answer)
        row["response"] = {"status_code": 200, "request_id": request_id, "body": body}
    elif line.failure is not None:
        status, body = line.failure.status, openai_wire.error_body(line.failure)
        row["response"] = {"status_code": status, "request_id": request_id, "body": body}
    else:
        code, message = _UNFINISHED[line.outcome]
        row["error"] = {"code": code, "message": message}
    return row


def output_file(engine: Engine, file_id: str) -> tuple[str, str, bytes] | None:
    """A batch's output (``file-out-``) or error (``file-err-``) file, rendered now."""
    kind, _, tail = file_id.removeprefix("file-").partition("-")
    batch = engine.batches.batches.get(f"batch_{tail}")
    if kind not in ("out", "err") or batch is None or batch.fmt is not openai_wire:
        return None
    engine.batches.refresh(batch, now_s(), engine)
    if batch.end is None:
        return None
    rows = [
        _result_line(batch, i, line)
        for i, line in enumerate(batch.lines)
        if (line.outcome == "succeeded") == (kind == "out")
    ]
    name = f"batch_{tail}_{'output' if kind == 'out' else 'error'}.jsonl"
    return name, "batch_output", jsonl(rows)


def _error(exc: SimError) -> Response:
    return respond(openai_wire.error_body(exc), exc.status)


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise SimError(400, "'limit' must be an integer from 1 to 100.", param="limit")
    return int(value)


def add_routes(app: FastAPI, engine: Engine) -> None:
    """Mount the Files and Batches APIs."""
    add_file_routes(app, engine, lambda file_id: output_file(engine, file_id))
    _add_batch_routes(app, engine)
    _add_list_route(app, engine)


def _found(engine: Engine, batch_id: str) -> SimBatch:
    batch = engine.batches.get(batch_id, openai_wire)
    engine.batches.refresh(batch, now_s(), engine)
    return batch


def _add_batch_routes(app: FastAPI, engine: Engine) -> None:
    @app.post("/v1/batches")
    async def create_batch(request: Request) -> Response:
        """Create a batch from an uploaded input file."""
        try:
            batch = create(engine, await read_json(request), request.headers)
            engine.batches.add(batch, engine)
        except SimError as exc:
            return _error(exc)
        return respond(render(batch, batch.created_s, status="validating"))

    @app.get("/v1/batches/{batch_id}")
    async def retrieve_batch(batch_id: str) -> Response:
        """The batch, as of now."""
        try:
            return respond(render(_found(engine, batch_id), now_s()))
        except SimError as exc:
            return _error(exc)

    @app.post("/v1/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str) -> Response:
        """Cancel a batch that has not ended (409 for one that has)."""
        try:
            batch = _found(engine, batch_id)
            if batch.end not in (None, "cancelled"):
                message = f"Cannot cancel a batch with status '{batch.end}'."
                raise SimError(409, message, code="batch_not_cancellable")
            cancelling = engine.batches.cancel(batch, now_s(), engine)
        except SimError as exc:
            return _error(exc)
        return respond(render(batch, now_s(), status="cancelling" if cancelling else None))


def _add_list_route(app: FastAPI, engine: Engine) -> None:
    @app.get("/v1/batches")
    async def list_batches(limit: str | None = None, after: str | None = None) -> Response:
        """Batches, newest first, ``limit`` at a time after the id ``after``."""
        try:
            page, more = engine.batches.page(openai_wire, _limit(limit), after=after)
        except SimError as exc:
            return _error(exc)
        now = now_s()
        for batch in page:
            engine.batches.refresh(batch, now, engine)
        data = [render(b, now) for b in page]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return respond(
            {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}
        )
