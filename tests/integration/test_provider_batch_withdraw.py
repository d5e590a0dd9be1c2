"""Jobs leaving a provider batch that is still running (issue 26 item 3).

A private cluster on the real Postgres and Redis: the simulator, Celery worker
processes, the reconciler and (for the cancel) the HTTP API. A provider cannot
cancel one line of a batch, so a job that is cancelled, or whose deadline comes
close, is withdrawn in our store; a provider batch left with no line that wants
an answer is cancelled at the provider (RELIABILITY.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
import pytest
from sqlalchemy import select

from loadtests._cluster import Cluster, ClusterSpec
from orchestrator.core.catalog import load_catalog
from orchestrator.core.schemas import JobRequest, Usage
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from orchestrator.store.provider_batch_models import ProviderBatch, ProviderBatchLine
from tests.integration.reliability import MakeCluster, deployment, make_cluster
from tests.integration.test_provider_batch_cluster import (
    BATCH_PRICES,
    KNOBS,
    submit_native_batch,
    submitted_rows,
)

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]
# objective cost with a 60 s deadline may go by provider batch; it must run
# synchronously 52 s before its deadline, so 8 s after it was submitted
SHORT_DEADLINE = {
    "JOB_DEADLINE_S": "60",
    "PROVIDER_BATCH_MIN_WAIT_S": "0",
    "PROVIDER_BATCH_SYNC_MARGIN_S": "52",
}


def spec(processing_s: float, *, api: bool = False) -> ClusterSpec:
    return ClusterSpec(
        deployments=[deployment("pb-mini", "gpt-4o-mini", price=1.0, batch=BATCH_PRICES)],
        simulator={"default": {"batch_processing_s": processing_s}},
        tiers=("fast",),
        knobs=KNOBS | SHORT_DEADLINE,
        api=api,
    )


def submit_cost_jobs(cluster: Cluster, n: int) -> list[str]:
    requests = [
        JobRequest(prompt=f"Cheaply summarise memo {i}.", tier="fast", objective="cost")
        for i in range(n)
    ]
    return cluster.submit(requests)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def batches(cluster: Cluster) -> list[ProviderBatch]:
    with session_scope(cluster.engine) as session:
        found = list(session.scalars(select(ProviderBatch)))
        session.expunge_all()
        return found


def line_states(cluster: Cluster, job_ids: Sequence[str]) -> dict[str, str]:
    with session_scope(cluster.engine) as session:
        found = select(ProviderBatchLine).where(ProviderBatchLine.job_id.in_(job_ids))
        return {ln.job_id: ln.state for ln in session.scalars(found)}


def ledger(cluster: Cluster, job_ids: Sequence[str]) -> list[tuple[str, str, int, int, int]]:
    """(job id, attempt outcome, cost, input tokens, output tokens) of each ledger row."""
    with session_scope(cluster.engine) as session:
        rows = session.execute(
            select(
                LedgerEntry.job_id,
                Attempt.outcome,
                LedgerEntry.cost_micro_usd,
                LedgerEntry.input_tokens,
                LedgerEntry.output_tokens,
            )
            .join(Attempt, Attempt.id == LedgerEntry.attempt_id)
            .where(LedgerEntry.job_id.in_(job_ids))
        ).all()
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def sim_batches(cluster: Cluster) -> dict[str, int]:
    stats = httpx.get(f"{cluster.sim_base}/_sim/stats", timeout=5).json()
    return {k: int(v) for k, v in stats["batches"]["total"].items()}


def prices(cluster: Cluster, tokens_in: int, tokens_out: int) -> tuple[int, int]:
    """(sync, batch) cost of these tokens on pb-mini, from the catalog."""
    dep = load_catalog(cluster.settings).get("pb-mini")
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    return cost_micro_usd(dep, usage), cost_micro_usd(dep.batch_priced(), usage)


def test_a_job_whose_deadline_nears_leaves_its_batch_and_runs_synchronously(
    make_cluster: MakeCluster,
) -> None:
    # Given provider batches that take 5 minutes, and two jobs (objective cost) that
    # must run synchronously 8 s after they were submitted
    cluster = make_cluster(spec(processing_s=300.0))
    job_ids = submit_cost_jobs(cluster, 2)
    wait_for("the provider batch to be submitted", lambda: submitted_rows(cluster) == 1)
    # When their deadline comes close while the provider batch is still running
    statuses = cluster.wait_final(job_ids, timeout_s=90)
    # Then each job succeeded exactly once, with one ledger row, at the synchronous price
    assert set(statuses.values()) == {"succeeded"}, statuses
    audit = cluster.audit(job_ids)
    assert (audit.lost, audit.duplicate_successes, audit.ledger_mismatches) == (0, 0, 0), audit
    rows = ledger(cluster, job_ids)
    assert sorted(r[0] for r in rows) == sorted(job_ids), rows
    for _, outcome, cost, tokens_in, tokens_out in rows:
        assert outcome == "ok"
        assert cost == prices(cluster, tokens_in, tokens_out)[0]
    # and their lines were withdrawn (by the reconciler's next pass), and the provider
    # batch, wanted by no line any more, was cancelled at the provider before it
    # answered anything
    withdrawn = lambda: set(line_states(cluster, job_ids).values()) == {"withdrawn"}  # noqa: E731
    wait_for("the lines to be withdrawn", withdrawn, 10)
    wait_for("the provider batch to end", lambda: batches(cluster)[0].state == "done")
    ended = batches(cluster)[0]
    assert (ended.provider_status, ended.succeeded) == ("cancelled", 0), ended.__dict__
    sim = sim_batches(cluster)
    assert (sim.get("created"), sim.get("cancelled"), sim.get("lines_served", 0)) == (1, 1, 0)
    assert ledger(cluster, job_ids) == rows  # nothing billed after


def test_one_line_leaving_a_batch_others_still_want_is_billed_once_not_answered_twice(
    make_cluster: MakeCluster,
) -> None:
    # Given provider batches that take 15 s, four jobs with a 24h window and one job
    # that must run synchronously 8 s after it was submitted, gathered together
    cluster = make_cluster(spec(processing_s=15.0, api=True))
    waiting = submit_native_batch(cluster, 4)
    [hurried] = submit_cost_jobs(cluster, 1)
    job_ids = [*waiting, hurried]
    wait_for("one provider batch", lambda: submitted_rows(cluster) == 1)
    # When the hurried job's deadline nears, it runs synchronously; the batch goes on
    statuses = cluster.wait_final(job_ids, timeout_s=120)
    wait_for("the provider batch to end", lambda: batches(cluster)[0].state == "done", 60)
    # Then every job succeeded exactly once, and no provider batch was cancelled
    assert set(statuses.values()) == {"succeeded"}, statuses
    audit = cluster.audit(job_ids)
    assert (audit.lost, audit.duplicate_successes, audit.ledger_mismatches) == (0, 0, 0), audit
    assert sim_batches(cluster).get("cancelled", 0) == 0
    lines = line_states(cluster, job_ids)
    assert {lines[j] for j in waiting} == {"answered"}, lines
    # The hurried job's answer is its synchronous call's; the provider still answered
    # (and bills) its line: one ledger row for it at the batch price, never its answer
    assert lines[hurried] == "billed", lines
    mine = sorted((r[1], r[2], r[3], r[4]) for r in ledger(cluster, [hurried]))
    assert [m[0] for m in mine] == ["ok", "superseded"], mine
    (_, sync_cost, sync_in, sync_out), (_, late_cost, late_in, late_out) = mine
    assert sync_cost == prices(cluster, sync_in, sync_out)[0]
    assert late_cost == prices(cluster, late_in, late_out)[1]
    # And GET /v1/usage shows the spend by path, and what the batch path saved
    assert_usage_by_path(cluster, job_ids, sync_micro_usd=sync_cost)


def assert_usage_by_path(cluster: Cluster, job_ids: Sequence[str], sync_micro_usd: int) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
        report = client.get("/v1/usage").json()
    batch_rows = [r for r in ledger(cluster, job_ids) if r[1] in ("ok", "superseded")]
    batch_rows = [r for r in batch_rows if (r[1], r[2]) != ("ok", sync_micro_usd)]
    spent = sum(r[2] for r in batch_rows)
    at_sync = sum(prices(cluster, r[3], r[4])[0] for r in batch_rows)
    assert report["by_path"]["sync"] == {"cost_micro_usd": sync_micro_usd}, report
    batch = report["by_path"]["provider_batch"]
    assert (batch["cost_micro_usd"], batch["billed_calls"]) == (spent, 5), report
    # the tokens are summed per deployment before pricing: within a micro-dollar a row
    assert abs(batch["at_sync_prices_micro_usd"] - at_sync) <= len(batch_rows), report
    assert batch["saved_micro_usd"] == batch["at_sync_prices_micro_usd"] - spent > 0, report
    assert report["total"]["cost_micro_usd"] == spent + sync_micro_usd, report


def test_cancelling_a_switchyard_batch_cancels_its_provider_batch(
    make_cluster: MakeCluster,
) -> None:
    # Given a native batch with a 24h window whose provider batch takes 5 minutes
    cluster = make_cluster(spec(processing_s=300.0, api=True))
    job_ids = submit_native_batch(cluster, 6)
    wait_for("the provider batch to be submitted", lambda: submitted_rows(cluster) == 1)
    with session_scope(cluster.engine) as session:
        batch_id = session.get(Job, job_ids[0]).batch_id  # type: ignore[union-attr]
    # When the Switchyard batch is cancelled through the API
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
        cancelled = client.post(f"/v1/batches/{batch_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["counts"]["cancelled"] == 6
    # Then its provider batch is cancelled at the provider, and no job of it is billed
    wait_for("the provider batch to end", lambda: batches(cluster)[0].state == "done")
    ended = batches(cluster)[0]
    assert ended.provider_status == "cancelled", ended.__dict__
    assert set(line_states(cluster, job_ids).values()) == {"withdrawn"}
    sim = sim_batches(cluster)
    assert (sim.get("created"), sim.get("cancelled"), sim.get("lines_served", 0)) == (1, 1, 0)
    time.sleep(3)  # a few more reconciler passes and polls
    assert set(cluster.statuses(job_ids).values()) == {"cancelled"}
    assert ledger(cluster, job_ids) == []
    assert cluster.audit(job_ids).ledger_mismatches == 0
