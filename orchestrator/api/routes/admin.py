"""Tenant administration over HTTP, behind the admin key (``SWITCHYARD_ADMIN_API_KEY``).

Keys are shown once, when made; only their hash is stored. A tenant reads its
own webhook signing secret with its own key (``/v1/webhooks/secret``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from orchestrator.api.bodies import JSONBodyRoute
from orchestrator.api.deps import AdminDep, SessionDep, StateDep, TenantDep
from orchestrator.cache.responses import MODES
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.schemas import CacheMode
from orchestrator.store import repo, tenants
from orchestrator.store.db import session_scope
from orchestrator.store.models import ApiKey, Tenant

MAX_RPM = 2**31 - 1  # the column is a 32-bit integer
router = APIRouter(prefix="/admin", tags=["admin"], route_class=JSONBodyRoute)
account = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class TenantCreate(BaseModel):
    """A new tenant: its unique name and, optionally, its own request rate."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$")
    rate_limit_rpm: int | None = Field(default=None, ge=0, le=MAX_RPM)


class TenantUpdate(BaseModel):
    """What an operator may change on a tenant (null: the cluster default)."""

    rate_limit_rpm: int | None = Field(default=None, ge=0, le=MAX_RPM)
    response_cache: CacheMode | None = Field(
        default=None, description="default cache mode; null: on for temperature 0 only"
    )


class TenantView(BaseModel):
    """A tenant as the admin API shows it."""

    id: str
    name: str
    created_at: datetime
    rate_limit_rpm: int | None = None
    response_cache: CacheMode | None = None


class KeyView(BaseModel):
    """An API key without its secret: id, display prefix, when made and revoked."""

    id: str
    tenant_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class NewKey(BaseModel):
    """A key just made: the only time its plaintext is shown."""

    key_id: str
    tenant_id: str
    api_key: str


class NewTenant(TenantView):
    """A tenant just made, with its first key and webhook secret (shown once)."""

    key_id: str
    api_key: str
    webhook_secret: str


class WebhookSecret(BaseModel):
    """The secret that signs this tenant's completion webhooks."""

    secret: str


def _tenant(row: Tenant) -> TenantView:
    return TenantView(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        rate_limit_rpm=row.rate_limit_rpm,
        response_cache=MODES.get(row.response_cache or ""),
    )


def _key(row: ApiKey) -> KeyView:
    return KeyView(
        id=row.id,
        tenant_id=row.tenant_id,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post("/tenants", status_code=status.HTTP_201_CREATED)
def create_tenant(body: TenantCreate, state: StateDep, _: AdminDep) -> NewTenant:
    """Create a tenant with its first API key."""
    try:
        with session_scope(state.engine) as session:
            row = repo.create_tenant(session, name=body.name)
            row.rate_limit_rpm = body.rate_limit_rpm
            key = repo.create_api_key(session, tenant_id=row.id)
            key_id = tenants.key_id_for(session, api_key=key)
            secret = tenants.webhook_secret(session, tenant_id=row.id)
            view = _tenant(row)
    except IntegrityError as exc:
        raise Conflict(f"tenant {body.name!r} exists") from exc
    assert key_id is not None
    return NewTenant(**view.model_dump(), key_id=key_id, api_key=key, webhook_secret=secret)


@router.get("/tenants")
def list_tenants(session: SessionDep, _: AdminDep) -> list[TenantView]:
    """Every tenant."""
    return [_tenant(t) for t in tenants.list_tenants(session)]


@router.patch("/tenants/{tenant_id}")
def update_tenant(
    tenant_id: str, body: TenantUpdate, session: SessionDep, _: AdminDep
) -> TenantView:
    """Set a tenant's own request rate and default cache mode (null: the cluster default)."""
    row = tenants.get_tenant(session, tenant_id=tenant_id)
    if row is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    row.rate_limit_rpm = body.rate_limit_rpm
    if "response_cache" in body.model_fields_set:  # CONTEXT.md; seen by the API within 5 s
        row.response_cache = body.response_cache
    return _tenant(row)


@router.post("/tenants/{tenant_id}/keys", status_code=status.HTTP_201_CREATED)
def create_key(tenant_id: str, session: SessionDep, _: AdminDep) -> NewKey:
    """Make another API key for a tenant (shown once)."""
    if tenants.get_tenant(session, tenant_id=tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    key = repo.create_api_key(session, tenant_id=tenant_id)
    key_id = tenants.key_id_for(session, api_key=key)
    assert key_id is not None
    return NewKey(key_id=key_id, tenant_id=tenant_id, api_key=key)


@router.get("/tenants/{tenant_id}/keys")
def list_keys(tenant_id: str, session: SessionDep, _: AdminDep) -> list[KeyView]:
    """A tenant's keys, without their secrets."""
    if tenants.get_tenant(session, tenant_id=tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return [_key(k) for k in tenants.list_keys(session, tenant_id=tenant_id)]


@router.post("/keys/{key_id}/revoke")
def revoke_key(key_id: str, session: SessionDep, _: AdminDep) -> KeyView:
    """Revoke a key; requests with it fail within a few seconds."""
    row = tenants.revoke_key(session, key_id=key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    return _key(row)


@account.get("/secret")
def webhook_secret(session: SessionDep, tenant_id: TenantDep) -> WebhookSecret:
    """The secret that signs your completion webhooks (HMAC-SHA256)."""
    return WebhookSecret(secret=tenants.webhook_secret(session, tenant_id=tenant_id))


@account.post("/secret/rotate")
def rotate_webhook_secret(session: SessionDep, tenant_id: TenantDep) -> WebhookSecret:
    """Replace your webhook secret; notifications sent from now on use the new one."""
    return WebhookSecret(secret=tenants.webhook_secret(session, tenant_id=tenant_id, rotate=True))
