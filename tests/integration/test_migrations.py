"""Migrations run both ways on the test database (SQLite or Postgres)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect

from orchestrator.store import migrate
from orchestrator.store.db import get_engine
from tests.conftest import private_schema

pytestmark = pytest.mark.integration

TABLES = {"tenants", "api_keys", "batches", "jobs", "attempts", "cost_ledger"}


def round_trip(url: str) -> None:
    # Given a fresh database migrated to head
    migrate.upgrade(url)
    assert set(inspect(get_engine(url)).get_table_names()) >= TABLES
    # When it is downgraded to base; Then the tables are gone
    migrate.downgrade(url, "base")
    assert not TABLES & set(inspect(get_engine(url)).get_table_names())
    # When it is upgraded again; Then they are back
    migrate.upgrade(url)
    assert set(inspect(get_engine(url)).get_table_names()) >= TABLES


def test_round_trip_on_sqlite(tmp_path: Path) -> None:
    round_trip(f"sqlite:///{tmp_path}/m.db")


@pytest.mark.skipif(
    not os.environ.get("SWITCHYARD_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="SWITCHYARD_TEST_DATABASE_URL does not name a Postgres database",
)
def test_round_trip_on_postgres() -> None:
    with private_schema(os.environ["SWITCHYARD_TEST_DATABASE_URL"]) as url:
        round_trip(url)


def test_session_database_is_at_head(database_url: str) -> None:
    # The session database (Postgres in CI) was migrated by the fixture
    assert set(inspect(get_engine(database_url)).get_table_names()) >= TABLES
