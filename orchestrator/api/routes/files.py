"""Files (OpenAI's Files API): upload a batch's input, read it back, read a batch's output.

An uploaded file is stored in the database (purpose ``batch`` only). A batch's
output and error files (``file_out_<batch>``, ``file_err_<batch>``) are not
stored: they are rendered from the batch's jobs when read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from orchestrator.api.deps import SessionDep, StateDep, TenantDep
from orchestrator.api.openai_views import error_file, output_file
from orchestrator.core.errors import NotFound, ValidationFailed
from orchestrator.jobs.views import ERROR_FILE_PREFIX, OUTPUT_FILE_PREFIX, unix
from orchestrator.store import files, repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import File as FileRow
from orchestrator.wire.openai_schemas import FileDeleted, FileList, FileObject

router = APIRouter(prefix="/v1/files", tags=["files"])


def _object(row: FileRow) -> FileObject:
    return FileObject(
        id=row.id,
        bytes=row.size_bytes,
        created_at=unix(row.created_at) or 0,
        filename=row.filename,
        purpose="batch",
    )


def _batch_file(session: Session, tenant_id: str, file_id: str) -> tuple[str, str] | None:
    """(batch id, ``output`` or ``error``) for a batch's rendered file id."""
    for prefix, kind in ((OUTPUT_FILE_PREFIX, "output"), (ERROR_FILE_PREFIX, "error")):
        if file_id.startswith(prefix):
            batch_id = file_id.removeprefix(prefix)
            if repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id) is None:
                raise NotFound(f"no file {file_id!r}")
            return batch_id, kind
    return None


def _render(state: StateDep, tenant_id: str, batch_id: str, kind: str) -> Iterator[bytes]:
    with session_scope(state.engine) as session:
        batch = repo.get_batch(session, tenant_id=tenant_id, batch_id=batch_id)
        assert batch is not None
        rejected = list(batch.rejected or [])
        jobs = repo.iter_batch_jobs(session, tenant_id=tenant_id, batch_id=batch_id)
        yield from output_file(jobs) if kind == "output" else error_file(jobs, rejected)


@router.post("")
async def upload_file(
    state: StateDep,
    tenant_id: TenantDep,
    file: Annotated[UploadFile, File(description="JSON Lines, one request per line")],
    purpose: Annotated[Literal["batch"], Form()],
) -> FileObject:
    """Upload a batch's input file (purpose ``batch``, JSON Lines)."""
    content = await file.read()
    if not content:
        raise ValidationFailed("file", "the file is empty")
    name = (file.filename or "input.jsonl")[:255]
    with session_scope(state.engine) as session:
        row = files.create_file(
            session, tenant_id=tenant_id, purpose=purpose, filename=name, content=content
        )
        return _object(row)


@router.get("")
def list_files(
    session: SessionDep,
    tenant_id: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    after: Annotated[str | None, Query(max_length=60)] = None,
) -> FileList:
    """The tenant's uploaded files, newest first."""
    rows = files.list_files(session, tenant_id=tenant_id, limit=limit + 1, after=after)
    data = [_object(r) for r in rows[:limit]]
    return FileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(rows) > limit,
    )


@router.get("/{file_id}")
def get_file(file_id: str, state: StateDep, tenant_id: TenantDep) -> FileObject:
    """An uploaded file, or a batch's output or error file."""
    with session_scope(state.engine) as session:
        rendered = _batch_file(session, tenant_id, file_id)
        if rendered is None:
            row = files.get_file(session, tenant_id=tenant_id, file_id=file_id)
            if row is None:
                raise NotFound(f"no file {file_id!r}")
            return _object(row)
        batch = repo.get_batch(session, tenant_id=tenant_id, batch_id=rendered[0])
        assert batch is not None
        created = unix(batch.created_at) or 0
    size = sum(len(chunk) for chunk in _render(state, tenant_id, *rendered))
    name = f"{rendered[0]}_{rendered[1]}.jsonl"
    return FileObject(
        id=file_id, bytes=size, created_at=created, filename=name, purpose="batch_output"
    )


@router.get("/{file_id}/content", response_class=Response)
def file_content(file_id: str, state: StateDep, tenant_id: TenantDep) -> Response:
    """The file's bytes; a batch's output or error file as JSON Lines, in input order."""
    with session_scope(state.engine) as session:
        rendered = _batch_file(session, tenant_id, file_id)
        if rendered is None:
            row = files.get_file(session, tenant_id=tenant_id, file_id=file_id, content=True)
            if row is None:
                raise NotFound(f"no file {file_id!r}")
            return Response(row.content, media_type="application/octet-stream")
    return StreamingResponse(_render(state, tenant_id, *rendered), media_type="application/jsonl")


@router.delete("/{file_id}")
def delete_file(file_id: str, session: SessionDep, tenant_id: TenantDep) -> FileDeleted:
    """Delete an uploaded file (a batch that used it keeps its jobs)."""
    if not files.delete_file(session, tenant_id=tenant_id, file_id=file_id):
        raise NotFound(f"no file {file_id!r}")
    return FileDeleted(id=file_id)
