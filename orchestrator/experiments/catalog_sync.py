"""Experiments declared in the catalog YAML, created in the database when the API starts.

    experiments:
      - name: cheap-vs-strong
        tenant: acme            # the tenant it runs for (must exist)
        unit: session
        arms:
          - {name: control, weight: 1}
          - {name: strong, weight: 1, quality: 0.8}

An experiment is created once, by (tenant, name): a catalog entry whose
experiment exists already (running, stopped or changed since) is left as it is,
so a restart never reshuffles units or revives a stopped experiment. An entry
for an unknown tenant, or one that clashes with a running experiment, is skipped
with a warning; a bad arm (unknown scorer or deployment) stops the start-up.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, select

from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError, Conflict, ValidationFailed
from orchestrator.experiments import records as store
from orchestrator.experiments.assignment import check_spec
from orchestrator.store import repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import Experiment

log = logging.getLogger(__name__)


def sync_catalog_experiments(engine: Engine, catalog: Catalog, settings: Settings) -> list[str]:
    """Create the catalog's experiments that are not in the database yet; returns their names."""
    created = []
    for entry in catalog.experiments:
        try:
            check_spec(entry, catalog, settings)
        except ValidationFailed as exc:
            raise ConfigError(f"catalog experiment {entry.name!r}: {exc}") from exc
        with session_scope(engine) as session:
            tenant = repo.get_tenant_by_name(session, name=entry.tenant)
            if tenant is None:
                log.warning(
                    "catalog experiment %r: no tenant %r; skipped", entry.name, entry.tenant
                )
                continue
            exists = session.scalar(
                select(Experiment.id).where(
                    Experiment.tenant_id == tenant.id, Experiment.name == entry.name
                )
            )
            if exists is not None:
                continue
            try:
                store.create(session, tenant_id=tenant.id, spec=entry, source="catalog")
            except Conflict as exc:
                log.warning("catalog experiment %r skipped: %s", entry.name, exc)
                continue
        created.append(entry.name)
    return created
