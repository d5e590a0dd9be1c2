"""A native batch with a window, routed to an Anthropic-shaped deployment, goes by
Anthropic's Message Batches end to end (issue 26).

A private cluster on the real Postgres and Redis: the simulator (its Message
Batches take a few seconds), Celery worker processes and the reconciler, with the
provider batch path on and short gather and poll times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from loadtests._cluster import Cluster, ClusterSpec
from orchestrator.core.catalog import load_catalog
from orchestrator.core.schemas import Usage
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from orchestrator.store.provider_batch_models import ProviderBatch, ProviderBatchLine
from tests.integration.reliability import MakeCluster, deployment, make_cluster
from tests.integration.test_provider_batch_cluster import KNOBS, submit_native_batch

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]
NAME = "pb-claude"
BATCH_PRICES = {"input_usd_per_mtok": 1.5, "output_usd_per_mtok": 6.0}  # half of 3 and 12


def spec() -> ClusterSpec:
    claude = deployment(NAME, "claude-haiku-3.5", price=3.0, api="anthropic", batch=BATCH_PRICES)
    return ClusterSpec(
        deployments=[claude],
        simulator={"default": {"batch_processing_s": 2.0}},
        tiers=("fast",),
        knobs=KNOBS,
    )


def found(cluster: Cluster, job_ids: Sequence[str]) -> dict[str, Any]:
    with session_scope(cluster.engine) as session:
        lines = session.scalars(
            select(ProviderBatchLine).where(ProviderBatchLine.job_id.in_(job_ids))
        )
        ledger = session.scalars(select(LedgerEntry).where(LedgerEntry.job_id.in_(job_ids)))
        attempts = session.scalars(select(Attempt).where(Attempt.job_id.in_(job_ids)))
        batches = session.scalars(select(ProviderBatch).where(ProviderBatch.deployment == NAME))
        job = session.get(Job, job_ids[0])
        assert job is not None
        return {
            "lines": {ln.job_id: ln.state for ln in lines},
            "ledger": list(ledger),
            "attempts": list(attempts),
            "provider_ids": [b.provider_batch_id for b in batches],
            "path": [s for s in job.routing if s["step"] == "path"],
        }


def test_a_native_batch_goes_by_anthropic_message_batches(make_cluster: MakeCluster) -> None:
    # Given a cluster whose one deployment speaks Anthropic's wire and offers its batch API
    cluster = make_cluster(spec())
    # When a native batch of 12 jobs with a 24h completion window is submitted
    job_ids = submit_native_batch(cluster, 12)
    statuses = cluster.wait_final(job_ids, timeout_s=120)
    # Then every job succeeded exactly once, by provider batch
    assert set(statuses.values()) == {"succeeded"}, statuses
    audit = cluster.audit(job_ids)
    assert (audit.lost, audit.duplicate_successes, audit.ledger_mismatches) == (0, 0, 0), audit
    rows = found(cluster, job_ids)
    assert rows["path"] and rows["path"][0]["choice"] == "provider_batch", rows["path"]
    assert set(rows["lines"].values()) == {"answered"}, rows["lines"]
    # with one attempt and one ledger row each, at the catalog's batch price (half)
    assert sorted(a.job_id for a in rows["attempts"]) == sorted(job_ids)
    assert sorted(r.job_id for r in rows["ledger"]) == sorted(job_ids)
    dep = load_catalog(cluster.settings).get(NAME)
    for row in rows["ledger"]:
        usage = Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens)
        assert row.cost_micro_usd == cost_micro_usd(dep.batch_priced(), usage) > 0
        assert abs(2 * row.cost_micro_usd - cost_micro_usd(dep, usage)) <= 1
    # and the simulator made exactly the Message Batches our store records, no more
    stats = httpx.get(f"{cluster.sim_base}/_sim/stats", timeout=5).json()["batches"]
    made = stats["formats"]["anthropic"]["created"]
    assert made == stats["total"]["created"] == len(rows["provider_ids"]) >= 1
    assert all(p and p.startswith("msgbatch_") for p in rows["provider_ids"])
    assert stats["formats"]["anthropic"]["lines_received"] == len(job_ids)
