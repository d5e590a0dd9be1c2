"""Request dependencies: the per-app state, a DB session, the caller's tenant, the admin check.

A tenant key is looked up by its hash and the answer kept for a few seconds
(``KEY_CACHE_S``), so a revoked key stops working within that time; every
authenticated request then takes one slot of its tenant's rate limit.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

import redis
import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from orchestrator.admission.dispatch import Dispatcher
from orchestrator.api.limits import TenantRateLimiter
from orchestrator.cache.hits import CacheFront
from orchestrator.cache.responses import ResponseCache
from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import Forbidden, Unauthorized
from orchestrator.store import tenants
from orchestrator.store.db import session_scope
from orchestrator.store.repo import hash_api_key

KEY_CACHE_S = 5.0


@dataclass
class KeyCache:
    """Recently seen key hashes -> caller (or None for an unknown key), for a few seconds."""

    entries: dict[str, tuple[float, tenants.Caller | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key_hash: str) -> tuple[bool, tenants.Caller | None]:
        with self.lock:
            hit = self.entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key_hash: str, caller: tenants.Caller | None) -> None:
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[key_hash] = (time.monotonic() + KEY_CACHE_S, caller)


@dataclass
class AppState:
    """Everything a route needs, built once by ``create_app``."""

    settings: Settings
    catalog: Catalog
    engine: Engine
    dispatcher: Dispatcher
    redis: redis.Redis
    aredis: aioredis.Redis
    limiter: TenantRateLimiter
    keys: KeyCache = field(default_factory=KeyCache)

    @cached_property
    def cache_front(self) -> CacheFront:
        """The response cache's fast path (CONTEXT.md): cache modes, hits answered at once."""
        cache = ResponseCache(
            self.redis,
            prefix=self.settings.redis_key_prefix,
            ttl_s=self.settings.response_cache_ttl_s,
            wait_s=self.settings.response_cache_wait_s,
        )
        return CacheFront(self.settings, self.engine, cache, self.dispatcher.conversations.modes)


async def get_state(request: Request) -> AppState:
    """The app's state; async, so FastAPI does not hop to a thread to read an attribute."""
    state: AppState = request.app.state.switchyard
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _caller(state: AppState, api_key: str) -> tenants.Caller | None:
    key_hash = hash_api_key(api_key)
    known, caller = state.keys.get(key_hash)
    if not known:
        with session_scope(state.engine) as session:
            caller = tenants.caller_for_key(session, api_key=api_key)
        state.keys.put(key_hash, caller)
    return caller


async def current_caller(state: StateDep, credentials: BearerDep) -> tenants.Caller:
    """Who the bearer API key belongs to (401 without a valid one); not rate-limited.

    Async, so a request whose key is in ``KeyCache`` needs no thread; only a key
    not seen for ``KEY_CACHE_S`` is looked up in the database, in the thread pool.
    A route that takes the caller must check the tenant's rate limit itself
    (chat completions do, in the same Redis round trip as the response cache).
    """
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    known, caller = state.keys.get(hash_api_key(credentials.credentials))
    if not known:
        caller = await run_in_threadpool(_caller, state, credentials.credentials)
    if caller is None:
        raise Unauthorized("invalid API key")
    return caller


CallerDep = Annotated[tenants.Caller, Depends(current_caller)]


async def current_tenant(state: StateDep, caller: CallerDep) -> str:
    """The tenant id behind the bearer API key (401 without a valid one); rate-limited
    with the async Redis client (no thread hop)."""
    await state.limiter.acheck(caller.tenant_id, caller.rate_limit_rpm)
    return caller.tenant_id


TenantDep = Annotated[str, Depends(current_tenant)]


def require_admin(state: StateDep, credentials: BearerDep) -> None:
    """Only the admin key passes; 403 if none is configured, 401 for any other key."""
    admin = state.settings.admin_api_key
    if admin is None:
        raise Forbidden("the admin API is off: set SWITCHYARD_ADMIN_API_KEY to use it")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), admin.get_secret_value().encode()):
        raise Unauthorized("the admin API needs the admin key")


AdminDep = Annotated[None, Depends(require_admin)]
