"""Fixtures and helpers for the reliability tests: private clusters on real services.

Each cluster gets its own database (a Postgres schema when
``SWITCHYARD_TEST_DATABASE_URL`` is set, else a SQLite file) and its own Redis
key prefix, so its reconciler and workers never see another test's jobs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from loadtests._cluster import Cluster, ClusterSpec
from orchestrator.core.schemas import JobRequest
from tests.conftest import private_database as own_database
from tests.conftest import private_schema

MakeCluster = Callable[[ClusterSpec], Cluster]


def deployment(name: str, model: str, *, price: float = 1.0, **extra: Any) -> dict[str, Any]:
    """One catalog entry served by the cluster's simulator, in tier ``fast``."""
    return {
        "name": name,
        "provider": "simulator",
        "model": model,
        "base_url": "${SIMULATOR_URL}",
        "tiers": ["fast"],
        "input_usd_per_mtok": price,
        "output_usd_per_mtok": price * 4,
        "context_window": 128000,
        "max_output_tokens": 4096,
        **extra,
    }


def jobs(n: int, *, model: str | None = None, max_tokens: int = 32) -> list[JobRequest]:
    return [
        JobRequest(
            prompt=f"Say hello, number {i}.", tier="fast", model=model, max_tokens=max_tokens
        )
        for i in range(n)
    ]


@pytest.fixture
def private_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database no other test writes to (Postgres schema or SQLite file)."""
    with own_database(tmp_path_factory) as url:
        yield url


@pytest.fixture
def make_cluster(tmp_path: Path, redis_url: str) -> Iterator[MakeCluster]:
    """Start private clusters; every one is stopped and its database dropped afterwards."""
    with ExitStack() as stack:
        prefixes: list[str] = []

        def make(spec: ClusterSpec) -> Cluster:
            n = len(prefixes)
            prefixes.append(f"sytest-rel-{secrets.token_hex(4)}:")
            shared = os.environ.get("SWITCHYARD_TEST_DATABASE_URL")
            if shared:
                url = stack.enter_context(private_schema(shared))
            else:
                url = f"sqlite:///{tmp_path / f'cluster{n}.db'}"
            cluster = Cluster(
                spec,
                workdir=tmp_path / f"cluster{n}",
                database_url=url,
                redis_url=redis_url,
                key_prefix=prefixes[-1],
            )
            stack.callback(cluster.stop)
            return cluster.start()

        yield make
    client = redis.Redis.from_url(redis_url)
    for prefix in prefixes:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    client.close()
