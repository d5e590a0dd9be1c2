"""A private cluster for the experiment tests: its own schema, Redis prefix and processes.

The guardrail test makes a deployment fail half its calls and opens breakers,
and the restart test stops and starts the API, so these tests run their own
simulator, API, fast worker (high concurrency) and reconciler rather than the
shared ``cluster``.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from tests.conftest import free_port
from tests.integration.conftest import settings_env

FAST_WORKER_CONCURRENCY = 16
CHEAP, PRICEY = "sim-gpt-4o-mini", "sim-gpt-4.1"


@dataclass
class Private:
    """Handles to the private cluster."""

    api_url: str
    sim_url: str
    settings: Settings
    engine: Engine

    def tenant(self, name: str) -> str:
        """A new tenant with a key; returns the key."""
        with session_scope(self.engine) as session:
            row = repo.create_tenant(session, name=f"{name}-{secrets.token_hex(3)}")
            return repo.create_api_key(session, tenant_id=row.id)

    def call(self, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(method, self.api_url + path, headers=headers, timeout=60, **kwargs)

    def run_batch(
        self,
        key: str,
        jobs: list[dict[str, Any]],
        timeout_s: float = 300,
        stop_when: Callable[[], bool] | None = None,
    ) -> str:
        """Submit ``jobs`` as one batch; wait until every job is final (or ``stop_when()``)."""
        found = self.call(key, "POST", "/v1/batches", json=jobs)
        assert found.status_code == 202, found.text
        batch_id = str(found.json()["id"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            view = self.call(key, "GET", f"/v1/batches/{batch_id}").json()
            if view["status"] in ("completed", "failed", "cancelled", "expired"):
                return batch_id
            if stop_when is not None and stop_when():
                return batch_id
            time.sleep(0.2)
        raise TimeoutError(f"batch {batch_id} not final after {timeout_s}s: {view['counts']}")


def private_settings(database_url: str, redis_url: str, prefix: str, state: Path) -> Settings:
    sim_port = free_port()
    return Settings(
        state_dir=state,
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=prefix,
        simulator_url=f"http://127.0.0.1:{sim_port}/v1",
        simulator_port=sim_port,
        api_port=free_port(),
        worker_concurrency=FAST_WORKER_CONCURRENCY,
        tenant_rate_limit_rpm=0,
        breaker_open_s=1.0,
    )


@contextmanager
def running(settings: Settings, *, workers: bool = True) -> Iterator[Private]:
    """Start simulator and API (and fast and reasoning workers, reconciler); stop them after."""
    env = {**settings_env(settings), "SWITCHYARD_BREAKER_OPEN_S": str(settings.breaker_open_s)}
    supervisor = Supervisor(env=env, log_dir=settings.state_path / "logs")
    try:
        supervisor.spawn("simulator", "simulator", "--port", str(settings.simulator_port))
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        if workers:
            supervisor.spawn("worker-fast", "worker", "--tier", "fast")
            supervisor.spawn(  # grading jobs of the judge
                "worker-reasoning", "worker", "--tier", "reasoning", "--concurrency", "4"
            )
            supervisor.spawn("reconciler", "reconciler")
        sim = f"http://127.0.0.1:{settings.simulator_port}"
        supervisor.wait_http(f"{sim}/healthz")
        api_url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"{api_url}/readyz")
        engine = get_engine(settings.effective_database_url)
        yield Private(api_url, sim, settings, engine)
    finally:
        supervisor.stop()
        if os.environ.get("SWITCHYARD_TEST_SHOW_LOGS"):
            for log in sorted((settings.state_path / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-4000:]}")


def prompts(n: int, *, sessions: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "prompt": f"What is the capital of country number {i}?",
            "tier": "fast",  # the experiments' deployments serve fast; the arms pick strength
            "max_tokens": 64,
            **({"metadata": {"session_id": f"s-{i}"}} if sessions else {}),
        }
        for i in range(n)
    ]


def create(private: Private, key: str, spec: dict[str, Any]) -> dict[str, Any]:
    found = private.call(key, "POST", "/v1/experiments", json=spec)
    assert found.status_code == 201, found.text
    return dict(found.json())


def report(private: Private, key: str, name: str) -> dict[str, Any]:
    found = private.call(key, "GET", f"/v1/experiments/{name}/report")
    assert found.status_code == 200, found.text
    return dict(found.json())
