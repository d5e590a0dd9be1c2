"""Request dependencies: the per-app state, a DB session, and the caller's tenant."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from orchestrator.catalog import Catalog
from orchestrator.config import Settings
from orchestrator.dispatch import Dispatcher
from orchestrator.errors import Unauthorized
from orchestrator.store import repo
from orchestrator.store.db import session_scope


@dataclass
class AppState:
    """Everything a route needs, built once by ``create_app``."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    dispatcher: Dispatcher


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.switchyard
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False)


def current_tenant(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The tenant id behind the bearer API key; 401 without a valid one."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    with session_scope(state.engine) as session:
        tenant_id = repo.tenant_for_api_key(session, api_key=credentials.credentials)
    if tenant_id is None:
        raise Unauthorized("invalid API key")
    return tenant_id


TenantDep = Annotated[str, Depends(current_tenant)]
