"""Sessions: read or forget a conversation Switchyard keeps (CONTEXT.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from orchestrator.api.deps import SessionDep, TenantDep
from orchestrator.core.errors import NotFound
from orchestrator.jobs.views import aware
from orchestrator.store import sessions

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class SessionView(BaseModel):
    """A session: its stored turns, who served the last one, and how its context is cut."""

    id: str
    object: str = "session"
    turns: int
    system: str | None = None
    last_deployment: str | None = None
    last_tier: str | None = None
    last_job_id: str | None = None
    context_start: int = Field(description="index of the first stored message still sent")
    context_window: int = Field(description="the window the context was last fitted to")
    token_ratio: float = Field(description="provider-reported / estimated prompt tokens")
    created_at: datetime
    updated_at: datetime
    messages: list[dict[str, Any]] | None = Field(
        default=None, description="every stored message, oldest first (?messages=true)"
    )


@router.get("/{session_id}")
def get_session(
    session_id: str,
    session: SessionDep,
    tenant_id: TenantDep,
    messages: bool = Query(default=False, description="include every stored message"),
) -> SessionView:
    """One session of the caller's tenant (404 for any other)."""
    row = sessions.get_session(session, tenant_id=tenant_id, session_id=session_id)
    if row is None:
        raise NotFound(f"no session {session_id!r}")
    created, updated = aware(row.created_at), aware(row.updated_at)
    assert created is not None and updated is not None
    stored = None
    if messages:
        past = sessions.history(session, tenant_id=tenant_id, session_id=session_id)
        stored = [m.model_dump(mode="json", exclude_none=True) for m in past]
    return SessionView(
        id=row.id,
        turns=row.turns,
        system=row.system,
        last_deployment=row.last_deployment,
        last_tier=row.last_tier,
        last_job_id=row.last_job_id,
        context_start=row.context_start,
        context_window=row.context_window,
        token_ratio=row.token_ratio,
        created_at=created,
        updated_at=updated,
        messages=stored,
    )


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_session(session_id: str, session: SessionDep, tenant_id: TenantDep) -> None:
    """Forget a session and its stored turns (404 if the tenant has none by that id)."""
    if not sessions.delete_session(session, tenant_id=tenant_id, session_id=session_id):
        raise NotFound(f"no session {session_id!r}")
