"""Sessions: conversations kept in the database, every read and write scoped by tenant.

A session is created by the first turn that names it. Each successful job of a
session appends its new turns and the answer (``record_turn``), once: a retried
write, or a second delivery of the same job, finds its ``job_id`` already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.core.schemas import Message
from orchestrator.core.tokens import estimate_message_tokens
from orchestrator.store.models import ConversationSession, SessionTurn, utcnow


def get_session(session: Session, *, tenant_id: str, session_id: str) -> ConversationSession | None:
    return session.get(ConversationSession, (tenant_id, session_id))


def history(session: Session, *, tenant_id: str, session_id: str) -> list[Message]:
    """Every message of the session, oldest first."""
    rows = session.scalars(
        select(SessionTurn.message)
        .where(SessionTurn.tenant_id == tenant_id, SessionTurn.session_id == session_id)
        .order_by(SessionTurn.seq)
    )
    return [Message.model_validate(m) for m in rows]


def affinity(session: Session, *, tenant_id: str, session_id: str) -> tuple[str | None, str | None]:
    """(deployment, tier) that served the session's last turn, if any."""
    row = session.execute(
        select(ConversationSession.last_deployment, ConversationSession.last_tier).where(
            ConversationSession.tenant_id == tenant_id, ConversationSession.id == session_id
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


@dataclass(frozen=True)
class TurnRecord:
    """One answered turn of a session: what was said, who answered, how the context was cut."""

    job_id: str
    system: str | None
    messages: Sequence[Message]
    deployment: str
    tier: str
    context_start: int
    context_window: int
    token_ratio: float


def _locked(session: Session, tenant_id: str, session_id: str) -> ConversationSession:
    """The session row, locked for this transaction; created if it is new."""
    query = (
        select(ConversationSession)
        .where(ConversationSession.tenant_id == tenant_id, ConversationSession.id == session_id)
        .with_for_update()
    )
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(ConversationSession(tenant_id=tenant_id, id=session_id, turns=0))
    except IntegrityError:  # another turn created it first
        pass
    row = session.scalar(query)
    assert row is not None
    return row


def record_turn(session: Session, *, tenant_id: str, session_id: str, turn: TurnRecord) -> bool:
    """Append a job's messages to the session (False if this job's turn is already there)."""
    row = _locked(session, tenant_id, session_id)
    seen = session.scalar(
        select(SessionTurn.id)
        .where(
            SessionTurn.tenant_id == tenant_id,
            SessionTurn.session_id == session_id,
            SessionTurn.job_id == turn.job_id,
        )
        .limit(1)
    )
    if seen is not None:
        return False
    for offset, message in enumerate(turn.messages):
        session.add(
            SessionTurn(
                tenant_id=tenant_id,
                session_id=session_id,
                seq=row.turns + offset,
                job_id=turn.job_id,
                message=message.model_dump(mode="json", exclude_none=True),
                tokens=estimate_message_tokens(message),
            )
        )
    row.turns += len(turn.messages)
    row.system = turn.system if turn.system is not None else row.system
    row.last_deployment, row.last_tier, row.last_job_id = turn.deployment, turn.tier, turn.job_id
    row.context_start, row.context_window = turn.context_start, turn.context_window
    row.token_ratio, row.updated_at = turn.token_ratio, utcnow()
    session.flush()
    return True


def delete_session(session: Session, *, tenant_id: str, session_id: str) -> bool:
    """Forget a session and its turns; False if the tenant has no such session."""
    row = get_session(session, tenant_id=tenant_id, session_id=session_id)
    if row is None:
        return False
    session.execute(
        delete(SessionTurn).where(
            SessionTurn.tenant_id == tenant_id, SessionTurn.session_id == session_id
        )
    )
    session.delete(row)
    return True
