"""Tenant administration: tenants, their keys, limits and webhook secrets.

``repo`` creates tenants and keys; this module is what the admin API and the
``switchyard tenants`` / ``keys`` commands need besides.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.store.models import ApiKey, Tenant, utcnow
from orchestrator.store.repo import hash_api_key


@dataclass(frozen=True)
class Caller:
    """Who a valid API key belongs to, and the request rate that tenant may use."""

    tenant_id: str
    rate_limit_rpm: int | None


def caller_for_key(session: Session, *, api_key: str) -> Caller | None:
    row = session.execute(
        select(Tenant.id, Tenant.rate_limit_rpm)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_api_key(api_key), ApiKey.revoked_at.is_(None))
    ).first()
    return Caller(row[0], row[1]) if row is not None else None


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.created_at)))


def get_tenant(session: Session, *, tenant_id: str) -> Tenant | None:
    return session.get(Tenant, tenant_id)


def find_tenant(session: Session, *, name_or_id: str) -> Tenant | None:
    return session.scalar(
        select(Tenant).where((Tenant.id == name_or_id) | (Tenant.name == name_or_id))
    )


def set_rate_limit(session: Session, *, tenant_id: str, rpm: int | None) -> None:
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(rate_limit_rpm=rpm))


def webhook_secret(session: Session, *, tenant_id: str, rotate: bool = False) -> str:
    """The tenant's webhook signing secret, made on first use (or anew when rotating)."""
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    if tenant.webhook_secret is None or rotate:
        tenant.webhook_secret = "whsec_" + secrets.token_urlsafe(32)
        session.flush()
    return tenant.webhook_secret


def list_keys(session: Session, *, tenant_id: str) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
        )
    )


def revoke_key(session: Session, *, key_id: str) -> ApiKey | None:
    """Revoke a key by its id; None if there is no such key."""
    key = session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def key_id_for(session: Session, *, api_key: str) -> str | None:
    return session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_api_key(api_key)))
