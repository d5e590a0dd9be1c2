"""``switchyard worker`` refuses to start while a deployment has no provider key.

The real CLI is invoked (Typer's runner); ``os.execve``, which would replace the
test process with Celery, is recorded instead of run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli import main as cli
from orchestrator.core.config import get_settings

REAL = {
    "name": "gpt-4o-real",
    "provider": "openai",
    "model": "gpt-4o",
    "base_url": "https://api.openai.com/v1",
    "api_key_ref": "openai",
    "tiers": ["fast"],
    "input_usd_per_mtok": 2.5,
    "output_usd_per_mtok": 10,
    "context_window": 128000,
}
SIMULATED = {**REAL, "name": "sim", "base_url": "${SIMULATOR_URL}", "api_key_ref": None}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    calls: list[Any] = []
    monkeypatch.setattr(cli.os, "execve", lambda *args: calls.append(args))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def run_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *deployments: Any) -> Any:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"deployments": list(deployments)}))
    monkeypatch.setenv("SWITCHYARD_CATALOG_PATH", str(catalog))
    monkeypatch.setenv("SWITCHYARD_STATE_DIR", str(tmp_path))
    get_settings.cache_clear()
    return CliRunner().invoke(cli.app, ["worker", "--tier", "fast"])


def test_a_deployment_without_its_key_stops_the_worker_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    # Given a catalog with a real provider's deployment and no key for it
    monkeypatch.delenv("SWITCHYARD_PROVIDER_KEYS", raising=False)
    result = run_worker(tmp_path, monkeypatch, REAL, SIMULATED)
    # Then the worker does not start, and says which deployment and which variable
    assert result.exit_code == 2 and started == []
    assert "SWITCHYARD_PROVIDER_KEYS" in result.output and "gpt-4o-real" in result.output
    assert "'openai'" in result.output and "sim'" not in result.output


def test_a_real_deployment_without_a_key_ref_stops_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    result = run_worker(tmp_path, monkeypatch, {**REAL, "api_key_ref": None})
    assert result.exit_code == 2 and started == []
    assert "names no api_key_ref" in result.output and "SWITCHYARD_PROVIDER_KEYS" in result.output


def test_with_the_key_set_or_only_the_simulator_the_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    # Given the key in the environment, Then the worker starts (Celery is exec'd)
    monkeypatch.setenv("SWITCHYARD_PROVIDER_KEYS", json.dumps({"openai": "sk-test"}))
    assert run_worker(tmp_path, monkeypatch, REAL).exit_code == 0 and len(started) == 1
    # And a catalog of simulator deployments needs no key at all
    monkeypatch.delenv("SWITCHYARD_PROVIDER_KEYS")
    assert run_worker(tmp_path, monkeypatch, SIMULATED).exit_code == 0 and len(started) == 2
