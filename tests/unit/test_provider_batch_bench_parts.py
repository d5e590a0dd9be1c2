"""The provider-batch benchmark's choices and its account of a run, without a cluster."""

from __future__ import annotations

import pytest

from loadtests import provider_batch
from loadtests._batch_audit import JobAccount, Money, Row, money, outcome_counts
from loadtests._batch_plan import CANDIDATES, batch_wire_formats, choose
from orchestrator.cli.bench_commands import available, run_benchmark
from orchestrator.core.catalog import Catalog
from orchestrator.core.schemas import Usage
from orchestrator.costs.pricing import cost_micro_usd

USAGE = Usage(input_tokens=20, output_tokens=300)


def catalog() -> Catalog:
    return Catalog.model_validate({"deployments": [c.deployment(100) for c in CANDIDATES]})


def priced(name: str, *, batch: bool) -> int:
    dep = catalog().get(name)
    return cost_micro_usd(dep.batch_priced() if batch else dep, USAGE)


def test_the_second_provider_is_one_with_another_wire_when_its_adapter_exists() -> None:
    # Given the workers' batch adapters today, and as they may be later
    # When the bench chooses its two providers
    today = choose(batch_wire_formats())
    later = choose(["openai", "anthropic"])
    gemini = choose(["openai", "gemini"])
    # Then two providers every time: OpenAI and an OpenAI-shaped one while only that
    # wire has an adapter, Anthropic or Gemini once theirs exists
    assert "openai" in today.batch_wire_formats
    assert today.providers[0] == "openai" and len(set(today.providers)) == 2
    if today.batch_wire_formats == ("openai",):
        assert today.providers == ["openai", "groq"], today
        assert {c.api for c in today.candidates} == {"openai"}
    assert later.providers == ["openai", "anthropic"]
    assert gemini.providers == ["openai", "gemini"]


def test_every_candidate_batch_price_is_half_its_sync_price() -> None:
    for dep in catalog().deployments:
        assert dep.batch is not None
        assert dep.batch.input_usd_per_mtok * 2 == dep.input_usd_per_mtok, dep.name
        assert dep.batch.output_usd_per_mtok * 2 == dep.output_usd_per_mtok, dep.name


def test_the_account_finds_a_second_row_and_a_row_at_the_wrong_price() -> None:
    # Given a job answered by batch at the batch price, one re-run at the sync price,
    # one answered by batch but billed at the sync price, one billed twice, one unanswered
    name = "pb-openai"
    half, full = priced(name, batch=True), priced(name, batch=False)
    accounts = {
        "good-batch": JobAccount("succeeded", 1, [Row("ok", name, USAGE, half)], "answered"),
        "good-sync": JobAccount("succeeded", 1, [Row("ok", name, USAGE, full)], "released"),
        "dear-batch": JobAccount("succeeded", 1, [Row("ok", name, USAGE, full)], "answered"),
        "twice": JobAccount(
            "succeeded", 2, [Row("ok", name, USAGE, half), Row("ok", name, USAGE, full)], "answered"
        ),
        "unanswered": JobAccount("failed", 0, [], "released"),
    }
    # When the run is accounted for
    found = money(catalog(), accounts)
    counts = outcome_counts(accounts)
    # Then the three bad jobs are mismatches, two of them lost, and the sums add up
    assert sorted(found.mismatched) == ["dear-batch", "twice", "unanswered"]
    assert counts["lost"] == 2 and counts["succeeded"] == 4
    assert found.total_micro_usd == 2 * half + 3 * full
    assert found.sync_micro_usd == 4 * full
    assert found.report()["ledger_mismatches"] == 3


def test_the_bench_is_registered_and_runs_by_its_hyphenated_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "provider_batch" in available()
    with pytest.raises(SystemExit) as exited:
        run_benchmark("provider-batch", ["--help"])
    assert exited.value.code == 0
    assert "switchyard bench provider-batch" in capsys.readouterr().out


def test_expected_ratio_counts_failed_and_expired_lines_at_half_price_until_tries_run_out() -> None:
    # Given 2,000 jobs on two deployments of equal cost, 2% of batch lines failing
    # and 50 unfinished lines of an expired batch on the first
    args = provider_batch.parse(["--jobs", "2000", "--line-error-rate", "0.02"])
    spent = Money(sync_micro_usd=2000)
    spent.jobs_by_deployment.update({"pb-openai": 1000, "pb-anthropic": 1000})
    spent.sync_by_deployment.update({"pb-openai": 1000, "pb-anthropic": 1000})
    # When the design's expectation is taken with three tries, and with one
    three = provider_batch.expected(args, spent, "pb-openai", 50, 3)
    one = provider_batch.expected(args, spent, "pb-openai", 50, 1)
    # Then with three tries almost nothing runs synchronously: the ratio is half
    # (within 1%), and 89 lines were sent again by batch
    assert three["expected_lines_sent_again_by_batch"] == pytest.approx(89.0)
    assert three["expected_lines_rerun_sync"] == pytest.approx(0.04, abs=0.005)
    assert three["expected_ratio"] == pytest.approx(0.5, abs=0.0001)
    # and with one try every failed and expired line is re-run at the full price
    assert one["expected_lines_rerun_sync"] == pytest.approx(89.0)
    assert one["expected_ratio"] == pytest.approx(0.5 + 0.5 * 89 / 2000, abs=0.0001)
