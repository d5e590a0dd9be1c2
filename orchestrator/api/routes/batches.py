"""Batches: submit (JSON array or JSONL), follow, stream results, cancel, re-drive failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from orchestrator import control
from orchestrator.api.deps import SessionDep, StateDep, TenantDep
from orchestrator.api.views import batch_view, result_line
from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.schemas import BatchView, JobRequest
from orchestrator.store import repo
from orchestrator.store.db import session_scope

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def _items(raw: bytes, content_type: str) -> list[tuple[str, Any]]:
    """(where, parsed JSON) per job, from a JSON array or JSON Lines."""
    text = raw.decode("utf-8", errors="strict").strip()
    if not text:
        raise ValidationFailed("body", "empty batch")
    if "json" in content_type and "ndjson" not in content_type and text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationFailed("body", f"invalid JSON: {exc.msg} at char {exc.pos}") from exc
        return [(f"[{i}]", item) for i, item in enumerate(data)]
    items: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"line {number}", f"invalid JSON: {exc.msg}") from exc
    return items


def _parse(items: list[tuple[str, Any]]) -> list[JobRequest]:
    requests: list[JobRequest] = []
    for where, item in items:
        try:
            requests.append(JobRequest.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            field = f"{where}.{loc}" if loc else where
            raise ValidationFailed(field, first["msg"]) from exc
    return requests


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def submit_batch(request: Request, state: StateDep, tenant_id: TenantDep) -> BatchView:
    """Submit a batch as a JSON array or JSON Lines; every line must be valid."""
    raw = await request.body()
    try:
        items = _items(raw, request.headers.get("content-type", ""))
    except UnicodeDecodeError as exc:
        raise ValidationFailed("body", "not UTF-8") from exc
    requests = _parse(items)
    batch_id = state.dispatcher.submit_batch(tenant_id=tenant_id, requests=requests)
    with session_scope(state.engine) as session:
        return _view(session, tenant_id, batch_id)


def _view(session: Any, tenant_id: str, batch_id: str) -> BatchView:
    batch = repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r}")
    return batch_view(batch, repo.batch_totals(session, tenant_id=tenant_id, batch_id=batch_id))


@router.get("/{batch_id}")
def get_batch(batch_id: str, session: SessionDep, tenant_id: TenantDep) -> BatchView:
    """A batch's status, counts by job status, and spend so far."""
    return _view(session, tenant_id, batch_id)


@router.get("/{batch_id}/results")
def batch_results(batch_id: str, state: StateDep, tenant_id: TenantDep) -> StreamingResponse:
    """The batch's jobs as JSON Lines, in submission order, final or not."""
    with session_scope(state.engine) as session:
        if repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id) is None:
            raise NotFound(f"no batch {batch_id!r}")

    def lines() -> Iterator[bytes]:
        with session_scope(state.engine) as session:
            for job in repo.iter_batch_jobs(session, tenant_id=tenant_id, batch_id=batch_id):
                yield (json.dumps(result_line(job)) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/{batch_id}/cancel")
def cancel_batch(batch_id: str, state: StateDep, tenant_id: TenantDep) -> BatchView:
    """Cancel every job of the batch that is not final yet."""
    control.cancel_batch(state.engine, tenant_id=tenant_id, batch_id=batch_id)
    with session_scope(state.engine) as session:
        return _view(session, tenant_id, batch_id)


@router.post("/{batch_id}/redrive")
def redrive_batch(
    batch_id: str, state: StateDep, tenant_id: TenantDep, include_cancelled: bool = False
) -> BatchView:
    """Queue the batch's failed and expired jobs again (and cancelled ones, if asked)."""
    control.redrive_batch(
        state.engine,
        state.dispatcher.celery,
        state.settings,
        tenant_id=tenant_id,
        batch_id=batch_id,
        include_cancelled=include_cancelled,
    )
    with session_scope(state.engine) as session:
        return _view(session, tenant_id, batch_id)
