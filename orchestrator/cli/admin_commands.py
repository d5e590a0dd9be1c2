"""Operator commands on the database: ``switchyard tenants ...`` and ``switchyard keys ...``.

They need the database (``SWITCHYARD_DATABASE_URL``), not the API or the admin
key: whoever can run them can read the database anyway. A new key is printed
once, alone on stdout; only its hash is stored.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from orchestrator.core.config import get_settings
from orchestrator.store import repo, tenants
from orchestrator.store.db import get_engine, session_scope

tenants_app = typer.Typer(help="Tenants: create, list, set limits.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
console = Console(stderr=True)


def _print(table: Table) -> None:
    """A table on stdout, never cut to 80 columns when piped."""
    out = Console()
    (out if out.is_terminal else Console(width=200)).print(table)


def _engine() -> Engine:
    return get_engine(get_settings().effective_database_url, pool_size=1)


def _tenant_id(session: Session, name_or_id: str) -> str:
    row = tenants.find_tenant(session, name_or_id=name_or_id)
    if row is None:
        console.print(f"[red]no tenant {name_or_id!r}[/]")
        raise typer.Exit(1)
    return row.id


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument()],
    rate_limit_rpm: Annotated[
        int | None, typer.Option(help="Requests a minute for this tenant (default: the cluster's).")
    ] = None,
) -> None:
    """Create a tenant and print its first API key (shown once; stored hashed)."""
    with session_scope(_engine()) as session:
        if repo.get_tenant_by_name(session, name=name) is not None:
            console.print(f"[red]tenant {name!r} exists[/]")
            raise typer.Exit(1)
        tenant = repo.create_tenant(session, name=name)
        tenant.rate_limit_rpm = rate_limit_rpm
        key = repo.create_api_key(session, tenant_id=tenant.id)
        secret = tenants.webhook_secret(session, tenant_id=tenant.id)
        tenant_id = tenant.id
    console.print(f"tenant {tenant_id} ({name}); webhook secret {secret}")
    print(key)


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant."""
    table = Table()
    for column in ("id", "name", "rate limit (rpm)", "created"):
        table.add_column(column)
    with session_scope(_engine()) as session:
        for t in tenants.list_tenants(session):
            rpm = "default" if t.rate_limit_rpm is None else str(t.rate_limit_rpm)
            table.add_row(t.id, t.name, rpm, t.created_at.isoformat(timespec="seconds"))
    _print(table)


@tenants_app.command("limit")
def tenants_limit(
    tenant: Annotated[str, typer.Argument(help="Name or id.")],
    rpm: Annotated[
        int | None, typer.Argument(help="Requests a minute; omit for the default.")
    ] = None,
) -> None:
    """Set a tenant's own request rate."""
    with session_scope(_engine()) as session:
        tenants.set_rate_limit(session, tenant_id=_tenant_id(session, tenant), rpm=rpm)
    console.print(f"tenant {tenant}: {rpm if rpm is not None else 'default'} requests a minute")


@keys_app.command("create")
def keys_create(tenant: Annotated[str, typer.Argument(help="Tenant name or id.")]) -> None:
    """Make another API key for a tenant and print it (shown once)."""
    with session_scope(_engine()) as session:
        tenant_id = _tenant_id(session, tenant)
        key = repo.create_api_key(session, tenant_id=tenant_id)
        key_id = tenants.key_id_for(session, api_key=key)
    console.print(f"key {key_id} for tenant {tenant_id}")
    print(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str, typer.Argument(help="Tenant name or id.")]) -> None:
    """A tenant's keys (ids and prefixes, never the keys)."""
    table = Table()
    for column in ("id", "prefix", "created", "revoked"):
        table.add_column(column)
    with session_scope(_engine()) as session:
        for k in tenants.list_keys(session, tenant_id=_tenant_id(session, tenant)):
            revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else ""
            table.add_row(
                k.id, k.prefix + "...", k.created_at.isoformat(timespec="seconds"), revoked
            )
    _print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")]) -> None:
    """Revoke a key; the API refuses it within a few seconds."""
    with session_scope(_engine()) as session:
        row = tenants.revoke_key(session, key_id=key_id)
    if row is None:
        console.print(f"[red]no key {key_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"key {key_id} revoked")
