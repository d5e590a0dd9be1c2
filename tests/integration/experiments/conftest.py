"""Fixtures of the experiment tests: a private database and cluster per test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import private_database
from tests.integration.experiments.cluster import Private, private_settings, running


@pytest.fixture(scope="module")
def exp_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database private to the test module."""
    with private_database(tmp_path_factory) as url:
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
