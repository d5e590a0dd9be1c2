"""Which deployments lack their provider key: a worker refuses to start while any does.

The adapters send the simulator's placeholder key when a deployment has none, so
a catalog pointed at a real provider without its key configured used to send
that placeholder to the provider, job after job. A deployment served by the
built-in simulator (its ``base_url`` under ``Settings.simulator_url``) needs no
key; every other one needs an ``api_key_ref`` whose key the settings hold
(``SWITCHYARD_PROVIDER_KEYS``, ``SWITCHYARD_PROVIDER_KEYS_FILE`` or
``SWITCHYARD_PROVIDER_KEYS_DIR``).
"""

from __future__ import annotations

import json

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError

KEYS_VARIABLE = "SWITCHYARD_PROVIDER_KEYS"


def at_simulator(deployment: Deployment, settings: Settings) -> bool:
    """True if ``deployment`` is served by the built-in provider simulator."""
    simulator = settings.simulator_url.rstrip("/")
    return deployment.base_url.rstrip("/").startswith(simulator)


def _keyed(deployment: Deployment, settings: Settings) -> bool:
    ref = deployment.api_key_ref
    try:
        return bool(ref and settings.provider_key(ref))
    except (OSError, ValueError):  # an unreadable keys file or directory holds no key
        return False


def missing_keys(catalog: Catalog, settings: Settings) -> list[str]:
    """One line per deployment that would be called without its key."""
    missing = []
    for deployment in catalog.deployments:
        if at_simulator(deployment, settings) or _keyed(deployment, settings):
            continue
        ref = deployment.api_key_ref
        if ref is None:
            missing.append(
                f"deployment {deployment.name!r} ({deployment.base_url}) names no api_key_ref:"
                f" give it one in the catalog and its key in {KEYS_VARIABLE}"
            )
        else:
            example = json.dumps({ref: "..."})
            missing.append(
                f"deployment {deployment.name!r} has no key for api_key_ref {ref!r}:"
                f" set {KEYS_VARIABLE}='{example}' (or {KEYS_VARIABLE}_FILE /"
                f" {KEYS_VARIABLE}_DIR)"
            )
    return missing


def require_provider_keys(catalog: Catalog, settings: Settings) -> None:
    """Raise ``ConfigError`` naming every deployment without its key, and the variable."""
    missing = missing_keys(catalog, settings)
    if missing:
        raise ConfigError("provider keys missing; refusing to start:\n  " + "\n  ".join(missing))
