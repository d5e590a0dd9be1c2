"""First-run set-up for one machine: migrate the database and make a tenant with a key.

The key is written to ``<state_dir>/demo.key`` (mode 0600) so ``switchyard up``
can reuse it on the next run; only its hash is in the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

from orchestrator.store import migrate, repo
from orchestrator.store.db import session_scope

DEFAULT_TENANT = "demo"


def ensure_tenant_key(
    engine: Engine, *, state_dir: Path, tenant: str = DEFAULT_TENANT, api_key: str | None = None
) -> str:
    """An API key that works for ``tenant``: the given one, the saved one, or a new one."""
    key_file = state_dir / "demo.key"
    saved = key_file.read_text().strip() if key_file.exists() else None
    with session_scope(engine) as session:
        for candidate in (api_key, saved):
            if candidate and repo.tenant_for_api_key(session, api_key=candidate):
                return candidate
        row = repo.get_tenant_by_name(session, name=tenant) or repo.create_tenant(
            session, name=tenant
        )
        key = repo.create_api_key(session, tenant_id=row.id, api_key=api_key)
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def prepare_database(url: str) -> None:
    """Run every pending migration."""
    migrate.upgrade(url)
