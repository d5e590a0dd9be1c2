"""Shared fixtures: a real database and a real Redis for the whole session.

With ``SWITCHYARD_TEST_DATABASE_URL`` / ``SWITCHYARD_TEST_REDIS_URL`` set (CI sets
Postgres and the shared Redis), tests use those; otherwise a SQLite file and an
embedded Redis. On Postgres every run gets its own schema, and on a shared Redis
its own key prefix, so runs never see each other's data and nothing is flushed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from loadtests._services import free_port, private_schema
from orchestrator.cluster.embedded_redis import start_redis
from orchestrator.store import migrate
from orchestrator.store.db import dispose_engines


@contextmanager
def private_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of its own: a new schema on the shared Postgres, or a SQLite file."""
    shared = os.environ.get("SWITCHYARD_TEST_DATABASE_URL")
    if not shared:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'switchyard.db'}"
        migrate.upgrade(url)
        yield url
        dispose_engines(url)
        return
    with private_schema(shared) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_database(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    shared = os.environ.get("SWITCHYARD_TEST_REDIS_URL")
    if shared:
        yield shared
        return
    port = free_port()
    proc: subprocess.Popen[bytes] = start_redis(port, Path(tmp_path_factory.mktemp("redis")))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def key_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix private to this test session; its keys are deleted afterwards."""
    prefix = f"sytest-{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()
