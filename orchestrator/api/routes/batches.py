"""Batches: one resource for OpenAI's Batch API and Switchyard's native batches.

``POST /v1/batches`` takes OpenAI's ``{"input_file_id", "endpoint",
"completion_window", "metadata"}`` (lines refused alone: ``orchestrator.admission.batch_intake``)
or a native JSON array / JSON Lines of jobs (one bad line refuses the batch with
a 422 naming it). Every answer is OpenAI's Batch object plus ``counts`` and
``cost_micro_usd`` (``orchestrator.wire.batch_objects``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from orchestrator.admission import json_body
from orchestrator.admission.batch_intake import submit_openai_batch
from orchestrator.admission.dispatch import BatchSpec
from orchestrator.api.bodies import refusal
from orchestrator.api.deps import AppState, SessionDep, StateDep, TenantDep
from orchestrator.core.errors import Conflict, NotFound, ValidationFailed
from orchestrator.core.schemas import JobRequest, Objective
from orchestrator.costs.usage_reports import batch_cost
from orchestrator.jobs import control
from orchestrator.jobs.views import batch_view, rejected_line, result_line
from orchestrator.store import batches, repo
from orchestrator.store.db import session_scope
from orchestrator.wire.batch_objects import BatchList, BatchView, CreateBatchRequest
from orchestrator.wire.webhooks import check_callback_url

router = APIRouter(prefix="/v1/batches", tags=["batches"])
CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        CreateBatchRequest.model_json_schema(),
                        {"type": "array", "minItems": 1, "items": {"type": "object"}},
                    ]
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


def _openai_create(raw: bytes, content_type: str) -> CreateBatchRequest | None:
    """OpenAI's create-batch object, if that is what the body is."""
    if "ndjson" in content_type or not raw.lstrip().startswith(b"{"):
        return None
    try:
        data = json_body.loads(raw)
    except ValidationFailed:
        return None  # perhaps JSON Lines sent as JSON: parsed and refused line by line
    if not isinstance(data, dict) or "input_file_id" not in data:
        return None
    try:
        return CreateBatchRequest.model_validate(data)
    except ValidationError as exc:
        raise refusal(exc.errors()) from exc


def _items(raw: bytes, content_type: str) -> list[tuple[str, Any]]:
    """(where, parsed JSON) per job, from a JSON array or JSON Lines."""
    try:
        text = raw.decode("utf-8", errors="strict").strip()
    except UnicodeDecodeError as exc:
        raise ValidationFailed("body", "not UTF-8") from exc
    if not text:
        raise ValidationFailed("body", "empty batch")
    if "json" in content_type and "ndjson" not in content_type and text.startswith("["):
        data = json_body.loads(text)
        return [(f"[{i}]", item) for i, item in enumerate(data)]
    return [
        (f"line {number}", json_body.loads(line, field=f"line {number}"))
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _parse(items: list[tuple[str, Any]]) -> list[JobRequest]:
    requests: list[JobRequest] = []
    for where, item in items:
        try:
            requests.append(JobRequest.model_validate(item))
        except ValidationError as exc:
            raise refusal(exc.errors(), where) from exc
    return requests


@router.post("", status_code=status.HTTP_202_ACCEPTED, openapi_extra=CREATE_BODY)
async def submit_batch(
    request: Request,
    state: StateDep,
    tenant_id: TenantDep,
    callback_url: Annotated[str | None, Query(max_length=2000)] = None,
    objective: Annotated[Objective | None, Query()] = None,
) -> BatchView:
    """Create a batch: OpenAI's object naming an input file, or a JSON array / JSON Lines."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    submit = partial(_submit, state, tenant_id, raw, content_type)
    return await run_in_threadpool(submit, callback_url, objective)  # parsing, DNS: off the loop


def _submit(
    state: AppState,
    tenant_id: str,
    raw: bytes,
    content_type: str,
    callback_url: str | None,
    objective: Objective | None,
) -> BatchView:
    create = _openai_create(raw, content_type)
    if create is not None:
        batch_id = submit_openai_batch(
            state.dispatcher, state.settings, tenant_id=tenant_id, create=create
        )
    else:
        items = _items(raw, content_type)
        state.dispatcher.check_batch_size(len(items))  # before any line is validated
        requests = [_with_objective(r, objective) for r in _parse(items)]
        if callback_url is not None:
            check_callback_url(callback_url, allow_private=state.settings.webhook_allow_private)
        batch_id = state.dispatcher.submit_batch(
            tenant_id=tenant_id, requests=requests, spec=BatchSpec(callback_url=callback_url)
        )
    return _current(state, tenant_id, batch_id)


def _with_objective(request: JobRequest, objective: Objective | None) -> JobRequest:
    """The batch's objective for a line that names none (COSTS.md)."""
    if objective is None or request.objective is not None:
        return request
    return request.model_copy(update={"objective": objective})


def _current(state: AppState, tenant_id: str, batch_id: str) -> BatchView:
    with session_scope(state.engine) as session:
        return _view(session, tenant_id, batch_id)


@router.get("")
def list_batches(
    session: SessionDep,
    tenant_id: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=60)] = None,
) -> BatchList:
    """The tenant's batches, newest first; ``after`` is the last id of the previous page."""
    rows = batches.list_batches(session, tenant_id=tenant_id, limit=limit + 1, after=after)
    views = [
        batch_view(b, repo.batch_totals(session, tenant_id=tenant_id, batch_id=b.id))
        for b in rows[:limit]
    ]
    first = views[0].id if views else None
    last = views[-1].id if views else None
    return BatchList(data=views, first_id=first, last_id=last, has_more=len(rows) > limit)


def _view(session: Any, tenant_id: str, batch_id: str) -> BatchView:
    batch = repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r}")
    view = batch_view(batch, repo.batch_totals(session, tenant_id=tenant_id, batch_id=batch_id))
    view.cost_summary = batch_cost(session, tenant_id=tenant_id, batch_id=batch_id)
    return view


@router.get("/{batch_id}")
def get_batch(batch_id: str, session: SessionDep, tenant_id: TenantDep) -> BatchView:
    """A batch's status, counts by job status, and spend so far."""
    return _view(session, tenant_id, batch_id)


@router.get("/{batch_id}/results")
def batch_results(batch_id: str, state: StateDep, tenant_id: TenantDep) -> StreamingResponse:
    """The batch's jobs as JSON Lines, in submission order, final or not."""
    with session_scope(state.engine) as session:
        batch = repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id)
        if batch is None:
            raise NotFound(f"no batch {batch_id!r}")
        refused = [rejected_line(r) for r in batch.rejected or []]

    def lines() -> Iterator[bytes]:
        with session_scope(state.engine) as session:
            jobs = repo.iter_batch_jobs(session, tenant_id=tenant_id, batch_id=batch_id)
            merged = heapq.merge(
                (result_line(job) for job in jobs), refused, key=lambda line: line.index or 0
            )
            for line in merged:
                yield (line.model_dump_json() + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/{batch_id}/cancel")
def cancel_batch(batch_id: str, state: StateDep, tenant_id: TenantDep) -> BatchView:
    """Cancel every job of the batch that is not final yet (409 if the batch is finished)."""
    with session_scope(state.engine) as session:
        if _view(session, tenant_id, batch_id).status.final:
            raise Conflict(f"batch {batch_id} is already finished")
    costs = state.dispatcher.costs  # what the cancelled jobs spent is settled at once
    control.cancel_batch(state.engine, costs, tenant_id=tenant_id, batch_id=batch_id)
    with session_scope(state.engine) as session:
        batches.mark_batch_cancelled(session, tenant_id=tenant_id, batch_id=batch_id)
    with session_scope(state.engine) as session:
        return _view(session, tenant_id, batch_id)


@router.post("/{batch_id}/redrive")
def redrive_batch(
    batch_id: str, state: StateDep, tenant_id: TenantDep, include_cancelled: bool = False
) -> BatchView:
    """Queue the batch's failed and expired jobs again (and cancelled ones, if asked); 402
    when the budget cannot hold them, as for a new batch."""
    queued = control.redrive_batch(
        state.engine,
        state.dispatcher.celery,
        state.settings,
        state.dispatcher.costs,
        tenant_id=tenant_id,
        batch_id=batch_id,
        include_cancelled=include_cancelled,
    )
    with session_scope(state.engine) as session:
        if queued:
            batches.clear_cancelled(session, tenant_id=tenant_id, batch_id=batch_id)
    with session_scope(state.engine) as session:
        return _view(session, tenant_id, batch_id)
