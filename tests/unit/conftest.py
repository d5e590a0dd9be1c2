"""Unit-test fixtures: a real provider simulator, served over HTTP or in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from loadtests._serve import serving
from orchestrator.simulator import SimulatorConfig, create_simulator_app
from tests.unit.batch_adapters import simulator


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a default simulator running in a thread."""
    with serving(create_simulator_app()) as root:
        yield f"{root}/v1"


@pytest.fixture
def fresh_simulator() -> Iterator[str]:
    """Root URL of a simulator of its own, for tests that change its config or read its stats."""
    with serving(create_simulator_app(config=SimulatorConfig())) as root:
        yield root


@pytest.fixture
def sim() -> Iterator[TestClient]:
    """A default simulator in process (``http://testserver``), for the batch adapters' tests."""
    with simulator() as client:
        yield client
