"""Cancel and re-drive through the HTTP API, with real workers behind it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from loadtests._cluster import Cluster, ClusterSpec
from tests.integration.reliability import MakeCluster, deployment, make_cluster

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]


def api(cluster: Cluster) -> httpx.Client:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    return httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30)


def wait_batch(client: httpx.Client, batch_id: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        view: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if view["status"] == "completed":
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.3)


def test_a_batch_cancelled_mid_flight_stops_and_can_be_redriven(make_cluster: MakeCluster) -> None:
    # Given a slow provider (1.5 s a call) and one worker running two jobs at a time
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("dep-slow", "sim-slow")],
            simulator={"models": {"sim-slow": {"latency_p50_ms": 1500}}},
            concurrency=2,
            api=True,
        )
    )
    jobs = [{"prompt": f"hello {i}", "tier": "fast", "model": "dep-slow"} for i in range(8)]
    with api(cluster) as client:
        batch_id = client.post("/v1/batches", json=jobs).json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/v1/batches/{batch_id}").json()["counts"]["running"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # When it is cancelled while two jobs are in flight
        cancelled = client.post(f"/v1/batches/{batch_id}/cancel").json()
        # Then nothing is left to run, and the calls in flight cannot make their jobs succeed
        assert cancelled["status"] == "cancelled"
        assert cancelled["counts"]["cancelled"] + cancelled["counts"]["succeeded"] == 8
        assert cancelled["counts"]["cancelled"] >= 6
        time.sleep(2.0)  # let the calls in flight come back
        after = client.get(f"/v1/batches/{batch_id}").json()
        assert after["counts"] == cancelled["counts"]
        ids = cluster.batch_job_ids(batch_id)
        audit = cluster.audit(ids)
        assert audit.ledger_mismatches == 0 and audit.duplicate_successes == 0
        # And a finished job cannot be cancelled
        one = ids[0]
        client.post(f"/v1/batches/{batch_id}/cancel")
        assert client.post(f"/v1/jobs/{one}/cancel").status_code == 409
        # When the batch is re-driven, cancelled jobs included; Then every job succeeds
        client.post(f"/v1/batches/{batch_id}/redrive", params={"include_cancelled": "true"})
        done = wait_batch(client, batch_id)
        assert done["counts"]["succeeded"] == 8


def test_a_failed_job_is_redriven_once_the_provider_recovers(make_cluster: MakeCluster) -> None:
    # Given a provider that refuses every call with a 400
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("dep-bad", "sim-bad")],
            simulator={"models": {"sim-bad": {"error_rates": {"400": 1.0}}}},
            api=True,
        )
    )
    with api(cluster) as client:
        job_id = client.post("/v1/jobs", json={"prompt": "hi", "tier": "fast"}).json()["id"]
        assert cluster.wait_final([job_id], timeout_s=60) == {job_id: "failed"}
        # A failed job cannot be cancelled; a running one cannot be re-driven
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
        # When the provider recovers and the job is re-driven
        httpx.put(f"{cluster.sim_base}/_sim/config", json={}).raise_for_status()
        view = client.post(f"/v1/jobs/{job_id}/redrive").json()
        assert view["status"] in ("queued", "running", "succeeded")
        # Then it succeeds, with both attempts on record
        assert cluster.wait_final([job_id], timeout_s=60) == {job_id: "succeeded"}
        final = client.get(f"/v1/jobs/{job_id}").json()
        assert final["attempts"] == 2 and final["error"] is None
        assert client.post(f"/v1/jobs/{job_id}/redrive").status_code == 409
