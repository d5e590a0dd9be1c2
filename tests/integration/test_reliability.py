"""Execution guarantees through real worker processes, Redis and the database.

The provider is the simulator, configured per model; everything else is real:
``switchyard worker`` processes, the reconciler, Celery on Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from sqlalchemy import select

from loadtests._cluster import ClusterSpec
from orchestrator.core.catalog import load_catalog
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job
from tests.integration.reliability import MakeCluster, deployment, jobs, make_cluster
from workers.guards import BreakerPolicy, CircuitBreaker

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]


def test_a_400_ends_the_job_after_one_attempt_with_the_providers_message(
    make_cluster: MakeCluster,
) -> None:
    # Given a plan whose first deployment answers every call with a 400, and a healthy fallback
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("dep-bad", "sim-bad"), deployment("dep-good", "sim-good")],
            simulator={"models": {"sim-bad": {"error_rates": {"400": 1.0}}}},
        )
    )
    # When a job pinned to it runs
    [job_id] = cluster.submit(jobs(1, model="dep-bad"))
    statuses = cluster.wait_final([job_id], timeout_s=60)
    # Then it failed at once, after one attempt, with the provider's message, never retried
    assert statuses == {job_id: "failed"}
    with session_scope(cluster.engine) as session:
        job = session.get(Job, job_id)
        attempts = list(session.scalars(select(Attempt).where(Attempt.job_id == job_id)))
    assert job is not None and job.error is not None
    assert "Simulated bad request." in job.error and "400" in job.error
    assert [(a.deployment, a.outcome, a.http_status) for a in attempts] == [
        ("dep-bad", "BadRequest", 400)
    ]
    stats = cluster.sim_stats()["models"]
    assert stats["sim-bad"]["received"] == 1 and "sim-good" not in stats


def test_an_open_breaker_sends_jobs_to_the_fallback_without_calling(
    make_cluster: MakeCluster,
) -> None:
    # Given a primary deployment that fails every call, and a healthy fallback
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("dep-primary", "sim-primary"), deployment("dep-fb", "sim-fb")],
            simulator={"models": {"sim-primary": {"error_rates": {"500": 1.0}}}},
            knobs={"breaker_open_s": "120"},
        )
    )
    # When a first batch runs: its calls to the primary fail until its breaker opens
    first = cluster.submit(jobs(10, model="dep-primary"))
    assert set(cluster.wait_final(first, timeout_s=90).values()) == {"succeeded"}
    breaker = CircuitBreaker(
        redis.Redis.from_url(cluster.settings.effective_redis_url),
        prefix=cluster.settings.redis_key_prefix,
        policy=BreakerPolicy(),
    )
    assert breaker.state(load_catalog(cluster.settings).get("dep-primary")) == "open"
    calls_before = cluster.sim_stats()["models"]["sim-primary"]["received"]
    # And a second batch runs while it is open
    second = cluster.submit(jobs(20, model="dep-primary"))
    assert set(cluster.wait_final(second, timeout_s=60).values()) == {"succeeded"}
    # Then the primary got no call at all, and each job made exactly one call, to the fallback
    assert cluster.sim_stats()["models"]["sim-primary"]["received"] == calls_before
    with session_scope(cluster.engine) as session:
        attempts = session.execute(
            select(Attempt.job_id, Attempt.deployment, Attempt.outcome).where(
                Attempt.job_id.in_(second)
            )
        ).all()
    assert sorted(a.job_id for a in attempts) == sorted(second)
    assert {(a.deployment, a.outcome) for a in attempts} == {("dep-fb", "ok")}


def test_a_job_whose_worker_is_killed_mid_call_completes_once(make_cluster: MakeCluster) -> None:
    # Given a slow provider (4 s a call), short leases, and one worker
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("dep-slow", "sim-slow")],
            simulator={"models": {"sim-slow": {"latency_p50_ms": 4000}}},
            knobs={"job_lease_s": "3", "reconcile_interval_s": "0.5", "reconcile_grace_s": "1"},
        )
    )
    [job_id] = cluster.submit(jobs(1, model="dep-slow"))
    # When its worker is killed (SIGKILL) while the call is in flight, and another starts
    wait_until(lambda: cluster.sim_stats()["total"]["received"] == 1, timeout_s=60)
    cluster.kill_worker(cluster.workers[0])
    cluster.spawn_worker()
    # Then the job succeeds once: one answer recorded, one ledger row, the lease taken over once
    assert cluster.wait_final([job_id], timeout_s=90) == {job_id: "succeeded"}
    with session_scope(cluster.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        deliveries, expiries = job.deliveries, job.lease_expiries
    audit = cluster.audit([job_id])
    assert audit.attempts_by_outcome == {"ok": 1} and audit.ledger_rows == 1
    assert audit.duplicate_successes == 0 and audit.ledger_mismatches == 0
    assert (deliveries, expiries) == (2, 1)
    assert cluster.sim_stats()["total"]["received"] == 2  # the lost call, and the one that counted


def test_three_workers_sharing_a_deployment_limit_never_exceed_it(
    make_cluster: MakeCluster,
) -> None:
    # Given one deployment limited to 120 requests a minute, enforced by the simulator too,
    # and three worker processes eager to call it (24 threads)
    rpm = 120
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("dep-lim", "sim-lim", rate_limits={"rpm": rpm})],
            simulator={"models": {"sim-lim": {"rpm_limit": rpm, "latency_p50_ms": 50}}},
            workers=3,
        )
    )
    # When more jobs than a minute's budget are submitted at once
    ids = cluster.submit(jobs(rpm + 8, model="dep-lim"))
    statuses = cluster.wait_final(ids, timeout_s=150)
    # Then all succeed, the provider never refused a call, and no 60 s window saw over the limit
    assert set(statuses.values()) == {"succeeded"}
    stats = cluster.sim_stats()["models"]["sim-lim"]
    assert stats["rate_limited"] == 0, stats
    assert stats["max_received_per_60s"] <= rpm, stats
    # And the budget was used, not wasted: the busiest minute came close to the limit
    assert stats["max_received_per_60s"] >= 0.85 * rpm, stats


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
