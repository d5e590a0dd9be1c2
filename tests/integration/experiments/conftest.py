"""Fixtures of the experiment tests: a private database and cluster per test module."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.store import migrate
from orchestrator.store.db import dispose_engines
from tests.conftest import private_schema
from tests.integration.experiments.cluster import Private, private_settings, running


@pytest.fixture(scope="module")
def exp_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database private to the test module: a new Postgres schema, or a SQLite file."""
    shared = os.environ.get("SWITCHYARD_TEST_DATABASE_URL")
    if not shared:
        url = f"sqlite:///{tmp_path_factory.mktemp('expdb') / 'x.db'}"
        migrate.upgrade(url)
        yield url
        dispose_engines(url)
        return
    with private_schema(shared) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="module")
def private(
    exp_db: str, redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Private]:
    """The private cluster of one test module."""
    state = Path(tmp_path_factory.mktemp("exp-state"))
    settings = private_settings(
        exp_db, redis_url, f"{key_prefix}exp-{secrets.token_hex(2)}:", state
    )
    with running(settings) as cluster:
        yield cluster
