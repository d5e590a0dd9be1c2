"""Settings, the built-in catalog, and the price arithmetic."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError
from orchestrator.core.schemas import Usage
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.costs.pricing import cost_micro_usd, format_usd


def test_defaults_are_embedded(tmp_path: Path) -> None:
    # Given no database or redis URL; Then SQLite under the state dir and an embedded Redis
    settings = Settings(state_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'switchyard.db'}"
    assert settings.embedded_redis
    assert settings.effective_redis_url == "redis://127.0.0.1:6399/0"


def test_settings_refuse_bad_dsn_and_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="unsupported URL scheme"):
        Settings(database_url="mysql://root@localhost/x")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(bootstrap_api_key="changeme")


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_REDIS_URL", "redis://example:6379/2")
    assert Settings().effective_redis_url == "redis://example:6379/2"


def test_builtin_catalog_has_cheap_and_strong_per_tier() -> None:
    # Given the shipped catalog; Then each tier has >= 2 deployments of different price
    catalog = load_catalog(Settings(simulator_url="http://sim:9/v1"))
    for tier in ALL_TIERS:
        deployments = catalog.for_tier(tier)
        assert len(deployments) >= 2, tier
        prices = {d.input_usd_per_mtok + d.output_usd_per_mtok for d in deployments}
        assert len(prices) >= 2, tier
        assert all(d.base_url == "http://sim:9/v1" for d in deployments)
    assert all(d.vision for d in catalog.for_tier(ALL_TIERS[2]))


def test_catalog_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text("deployments: [{name: x}]\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_catalog(Settings(catalog_path=bad))
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(Settings(catalog_path=tmp_path / "missing.yaml"))


def test_cost_is_exact_integer_micro_usd() -> None:
    # Given $0.15 / $0.60 per million tokens
    catalog = load_catalog(Settings())
    mini = catalog.get("sim-gpt-4o-mini")
    assert mini.input_usd_per_mtok == Decimal("0.15")
    # When 1,000 input and 500 output tokens are used
    cost = cost_micro_usd(mini, Usage(input_tokens=1000, output_tokens=500))
    # Then it costs 150 + 300 = 450 micro-USD, and rounds half-up on fractions
    assert cost == 450
    assert cost_micro_usd(mini, Usage(input_tokens=10, output_tokens=0)) == 2  # 1.5 -> 2
    assert format_usd(450) == "$0.000450"
