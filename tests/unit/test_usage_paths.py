"""Spend by path and the batch path's saving: the arithmetic and how the CLI shows it."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.cli.usage_commands import _print
from orchestrator.costs.spend_by_path import PathSpend


def test_saved_is_the_sync_price_of_the_batch_tokens_less_what_they_cost() -> None:
    # Given 1.00 $ of batch spend whose tokens cost 2.00 $ at sync prices, beside 3.00 $ sync
    spend = PathSpend(3_000_000, 1_000_000, 10, 2_000_000)
    # Then it saved 1.00 $, and the JSON says so by path
    assert spend.saved_micro_usd == 1_000_000
    shown = spend.as_json()
    assert shown["sync"] == {"cost_micro_usd": 3_000_000}
    assert shown["provider_batch"]["saved_micro_usd"] == 1_000_000
    assert shown["provider_batch"]["billed_calls"] == 10


def test_spend_on_a_deployment_gone_from_the_catalog_saves_nothing() -> None:
    # Given 0.40 $ of the batch spend on a deployment no longer priced in the catalog
    spend = PathSpend(0, 1_000_000, 10, 1_200_000, unpriced_micro_usd=400_000)
    # Then only the priced 0.60 $ is compared with its sync price
    assert spend.saved_micro_usd == 600_000


def test_usage_prints_spend_by_path_and_the_saving(capsys: pytest.CaptureFixture[str]) -> None:
    report: dict[str, Any] = {
        "since": "2026-12-01",
        "until": "2026-12-09",
        "group_by": [],
        "data": [],
        "total": {"cost_micro_usd": 4_000_000},
        "by_path": PathSpend(3_000_000, 1_000_000, 10, 2_000_000).as_json(),
    }
    _print(report)
    out = " ".join(capsys.readouterr().out.split())
    assert "by path: sync $3.000000, provider batch $1.000000 (10 calls;" in out
    assert "$2.000000 at sync prices" in out
    assert "saved $1.000000" in out
