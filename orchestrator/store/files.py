"""Uploaded files (OpenAI's Files API): write, read, list and delete, scoped by tenant."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, defer

from orchestrator.store.models import File


def create_file(
    session: Session, *, tenant_id: str, purpose: str, filename: str, content: bytes
) -> File:
    row = File(
        tenant_id=tenant_id,
        purpose=purpose,
        filename=filename,
        size_bytes=len(content),
        content=content,
    )
    session.add(row)
    session.flush()
    return row


def get_file(
    session: Session, *, tenant_id: str, file_id: str, content: bool = False
) -> File | None:
    """A file of the tenant; its content is loaded only if asked for."""
    query = select(File).where(File.id == file_id, File.tenant_id == tenant_id)
    if not content:
        query = query.options(defer(File.content))
    return session.scalar(query)


def list_files(
    session: Session, *, tenant_id: str, limit: int, after: str | None = None
) -> list[File]:
    """The tenant's files, newest first, after the file ``after`` (cursor)."""
    query = select(File).where(File.tenant_id == tenant_id).options(defer(File.content))
    if after is not None:
        anchor = get_file(session, tenant_id=tenant_id, file_id=after)
        if anchor is not None:
            query = query.where(
                (File.created_at < anchor.created_at)
                | ((File.created_at == anchor.created_at) & (File.id > anchor.id))
            )
    return list(session.scalars(query.order_by(File.created_at.desc(), File.id).limit(limit)))


def delete_file(session: Session, *, tenant_id: str, file_id: str) -> bool:
    result = session.execute(delete(File).where(File.id == file_id, File.tenant_id == tenant_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
