"""A worker's database writes, retried while the database is unreachable.

A write whose reply was lost with the connection may have committed: a retried
write recognises its own attempt row (``written_before``) instead of writing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from orchestrator.store.db import session_scope, statement_scope
from orchestrator.store.models import Attempt

log = logging.getLogger(__name__)
T = TypeVar("T")
DB_PATIENCE_S = 120.0


def in_transaction(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    one_statement: bool = False,
    retry: bool = False,
) -> T:
    """Run ``work`` in a transaction, retrying while the database is unreachable.

    ``one_statement``: ``work`` makes one write (``store.db.statement_scope``).
    ``retry``: an earlier try, elsewhere, may have committed (``session.info["retry"]``).
    """
    delay_s, give_up = 0.2, time.monotonic() + DB_PATIENCE_S
    scope = statement_scope if one_statement else session_scope
    while True:
        try:
            with scope(engine) as session:
                session.info["retry"] = retry
                return work(session)
        except (OperationalError, InterfaceError) as exc:
            retry = True
            if time.monotonic() + delay_s > give_up:
                raise
            log.warning("database unavailable (%s); retrying in %.1fs", exc, delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


def written_before(session: Session, attempt_id: str | None) -> bool:
    """Did an earlier try of this write commit (its reply lost with the connection)?

    Only a retried write can find its own attempt, so a first try skips the lookup.
    """
    if not session.info.get("retry") or attempt_id is None:
        return False
    return session.get(Attempt, attempt_id) is not None
