"""A real cluster for integration tests: simulator, API and one Celery worker per tier.

Each part is its own process started through the ``switchyard`` CLI, as an
operator would, against the session's database and Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.core.tiers import ALL_TIERS, Tier
from orchestrator.store.db import get_engine
from tests.conftest import free_port

ADMIN_KEY = "sy-admin-integration-tests-0123456789"


@dataclass
class Cluster:
    """Handles to a running test cluster."""

    api_url: str
    api_key: str
    settings: Settings
    engine: Engine
    env: dict[str, str]
    worker_metrics_port: int = 0


@pytest.fixture(scope="session")
def cluster_settings(
    database_url: str, redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    sim_port = free_port()
    return Settings(
        state_dir=Path(tmp_path_factory.mktemp("state")),
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=key_prefix,
        simulator_url=f"http://127.0.0.1:{sim_port}/v1",
        simulator_port=sim_port,
        api_port=free_port(),
        worker_concurrency=8,  # 4 workers x 8 pooled connections: the shared Postgres has 100
        tenant_rate_limit_rpm=0,
        admin_api_key=ADMIN_KEY,
        webhook_allow_private=True,
        notifier_interval_s=0.2,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "SWITCHYARD_STATE_DIR": str(settings.state_dir),
        "SWITCHYARD_DATABASE_URL": settings.effective_database_url,
        "SWITCHYARD_REDIS_URL": settings.effective_redis_url,
        "SWITCHYARD_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "SWITCHYARD_SIMULATOR_URL": settings.simulator_url,
        "SWITCHYARD_WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "SWITCHYARD_TENANT_RATE_LIMIT_RPM": str(settings.tenant_rate_limit_rpm),
        "SWITCHYARD_WEBHOOK_ALLOW_PRIVATE": str(settings.webhook_allow_private).lower(),
        "SWITCHYARD_NOTIFIER_INTERVAL_S": str(settings.notifier_interval_s),
        **(
            {"SWITCHYARD_ADMIN_API_KEY": settings.admin_api_key.get_secret_value()}
            if settings.admin_api_key is not None
            else {}
        ),
    }


@pytest.fixture(scope="session")
def cluster(cluster_settings: Settings) -> Iterator[Cluster]:
    settings = cluster_settings
    engine = get_engine(settings.effective_database_url)
    api_key = ensure_tenant_key(engine, state_dir=settings.state_path, tenant="it-main")
    env = settings_env(settings)
    supervisor = Supervisor(env=env, log_dir=settings.state_path / "logs")
    try:
        supervisor.spawn("simulator", "simulator", "--port", str(settings.simulator_port))
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        metrics_port = free_port()
        for tier in ALL_TIERS:
            metrics = ("--metrics-port", str(metrics_port)) if tier is Tier.FAST else ()
            supervisor.spawn(f"worker-{tier.value}", "worker", "--tier", tier.value, *metrics)
        supervisor.spawn("notifier", "notifier")
        supervisor.spawn("reconciler", "reconciler")  # publishes deferred jobs when due
        supervisor.wait_http(f"http://127.0.0.1:{settings.simulator_port}/healthz")
        api_url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"{api_url}/readyz")
        yield Cluster(api_url, api_key, settings, engine, env, metrics_port)
    finally:
        supervisor.stop()
        if os.environ.get("SWITCHYARD_TEST_SHOW_LOGS"):
            for log in sorted((settings.state_path / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-4000:]}")
