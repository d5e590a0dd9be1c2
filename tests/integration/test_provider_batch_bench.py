"""The provider-batch benchmark's core at small scale (``loadtests/provider_batch.py``).

A private cluster on the real Postgres and Redis (a schema and a key prefix of
its own), one Celery worker process and the reconciler, two deployments of two
providers, and the simulator failing 2% of the batch lines and expiring one
provider batch: what ``switchyard bench provider-batch`` runs with 2,000 jobs.
"""

from __future__ import annotations

import os

import pytest

from loadtests import provider_batch
from tests.integration.reliability import MakeCluster, make_cluster

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]


def run(
    make_cluster: MakeCluster, *options: str, knobs: dict[str, str] | None = None
) -> dict[str, object]:
    small = ["--jobs", "40", "--lines-per-batch", "8", "--processing-s", "2", "--timeout", "150"]
    args = provider_batch.parse([*small, *options])
    plan, spec = provider_batch.planned(args, concurrency=8)
    spec.knobs.update(knobs or {})
    return provider_batch.measure(make_cluster(spec), plan, args, kill=args.kill)


def test_jobs_that_can_wait_go_by_provider_batch_at_half_price(make_cluster: MakeCluster) -> None:
    # Given 40 jobs with a 24h window over two providers, batches of at most 8 lines,
    # one of which expires
    # When the benchmark's core runs them
    result = run(make_cluster)
    # Then every job succeeded exactly once, no provider batch was created twice,
    # and each job's ledger is one row at the price of the path that answered it
    assert (result["succeeded"], result["lost"]) == (40, 0), result
    assert result["duplicate_provider_batches"] == 0, result
    assert (result["ledger_mismatches"], result["audit_ledger_mismatches"]) == (0, 0), result
    assert not provider_batch.failed(result)
    # and both providers had provider batches, exactly one of which expired
    by_provider = result["provider_batches_by_provider"]
    assert isinstance(by_provider, dict) and len(by_provider) == 2, result
    assert result["provider_batches_expired"] == 1, result
    # and the lines answered by batch cost half; the expired batch's unfinished half
    # (the lines the simulator expired: how many depends on how full that batch was when
    # it went) and any failed line waited for a later provider batch and were answered
    # there (the simulator fails every 50th line of a model: none fails three times)
    assert result["batch_lines_ratio"] == pytest.approx(0.5, abs=0.005), result
    expired, again = result["lines_expired"], result["lines_sent_again_by_batch"]
    assert isinstance(expired, int) and expired >= 1, result
    assert isinstance(again, int) and again >= expired, result
    assert result["lines_answered_after_a_retry"] == again, result
    assert (result["lines_rerun_sync"], result["answered_by_provider_batch"]) == (0, 40), result
    # so the whole run cost half the synchronous price (within the acceptance's 1%)
    assert result["ratio"] == pytest.approx(0.5, abs=0.005), result


@pytest.mark.skipif(
    not os.environ.get("SWITCHYARD_TEST_DATABASE_URL"), reason="kills are timed by Postgres rows"
)
def test_a_worker_killed_during_upload_polling_and_download_changes_nothing(
    make_cluster: MakeCluster,
) -> None:
    # Given the same run, whose dead worker's holds lapse in 4 s
    knobs = {"JOB_LEASE_S": "3", "PROVIDER_TIMEOUT_S": "2"}
    # When the worker is SIGKILLed (and replaced) as soon as a provider batch is seen
    # uploading, then polled, then downloading
    result = run(make_cluster, "--kill", "--processing-s", "4", knobs=knobs)
    # Then the worker was killed at least while it polled (the other two steps last
    # milliseconds at this size: tried, and reported), and every invariant holds
    phases = result["kills_in_phase"]
    assert isinstance(phases, dict) and phases["polling"] == 1, result
    assert (result["succeeded"], result["lost"]) == (40, 0), result
    assert result["duplicate_provider_batches"] == 0, result
    assert (result["ledger_mismatches"], result["audit_ledger_mismatches"]) == (0, 0), result
    assert result["provider_batches_expired"] == 1, result
    assert result["batch_lines_ratio"] == pytest.approx(0.5, abs=0.005), result
