"""A pipeline survives the loss of the worker running its second step: no step runs twice."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from loadtests._cluster import ClusterSpec
from orchestrator.core.schemas import JobRequest
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from tests.integration.reliability import MakeCluster, deployment, make_cluster, private_database
from tests.integration.test_pipelines import IMAGE

pytestmark = pytest.mark.integration
__all__ = ["make_cluster", "private_database"]


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_killing_the_worker_of_step_2_neither_repeats_step_1_nor_loses_the_job(
    make_cluster: MakeCluster,
) -> None:
    # Given one deployment per tier (the reasoning model takes 4 s), short leases, and one
    # worker process per tier queue
    cluster = make_cluster(
        ClusterSpec(
            deployments=[
                deployment("dep-eye", "sim-eye", vision=True, tiers=["vision"]),
                deployment("dep-think", "sim-think", tiers=["reasoning"]),
                deployment("dep-quick", "sim-quick", tiers=["fast"]),
            ],
            simulator={"models": {"sim-think": {"latency_p50_ms": 4000}}},
            workers=0,
            knobs={"job_lease_s": "3", "reconcile_interval_s": "0.5", "reconcile_grace_s": "1"},
        )
    )
    spawn = cluster.supervisor.spawn
    workers = {t: spawn(f"worker-{t}", "worker", "--tier", t) for t in ("vision", "fast")}
    thinker = spawn("worker-reasoning-1", "worker", "--tier", "reasoning")
    request = JobRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "A scanned receipt."},
                        {"type": "image_url", "image_url": {"url": IMAGE}},
                    ],
                }
            ],
            "steps": [
                {"name": "extract", "tier": "vision", "prompt": "Read it: {input}"},
                {"name": "analyse", "tier": "reasoning", "prompt": "Why? {steps.extract.output}"},
                {"name": "summary", "tier": "fast", "prompt": "Shorter: {steps.analyse.output}"},
            ],
        }
    )
    [job_id] = cluster.submit([request])  # a batch of one pipeline
    # When the reasoning worker is killed (SIGKILL) while step 2's call is in flight
    models = lambda: cluster.sim_stats()["models"]  # noqa: E731
    wait_until(lambda: models().get("sim-think", {}).get("received", 0) == 1, timeout_s=60)
    thinker.kill()
    thinker.wait()
    workers["reasoning"] = spawn("worker-reasoning-2", "worker", "--tier", "reasoning")
    statuses = cluster.wait_final([job_id], timeout_s=120)

    # Then the job succeeds; step 1 ran once, step 2 was taken over once and answered once
    assert statuses == {job_id: "succeeded"}
    stats = models()
    assert stats["sim-eye"]["received"] == 1
    assert stats["sim-think"]["received"] == 2
    assert stats["sim-quick"]["received"] == 1
    with session_scope(cluster.engine) as session:
        steps = list(
            session.scalars(select(Job).where(Job.parent_job_id == job_id).order_by(Job.step_index))
        )
        assert [s.tier for s in steps] == ["vision", "reasoning", "fast"]
        assert [s.status for s in steps] == ["succeeded"] * 3
        assert [s.lease_expiries for s in steps] == [0, 1, 0]
        ok = session.execute(
            select(Attempt.job_id, func.count())
            .where(Attempt.job_id.in_([s.id for s in steps]), Attempt.outcome == "ok")
            .group_by(Attempt.job_id)
        ).all()
        assert dict(ok) == {s.id: 1 for s in steps}
        # And the job's cost is the sum of its steps' ledger rows
        ledger = session.scalar(
            select(func.sum(LedgerEntry.cost_micro_usd)).where(
                LedgerEntry.job_id.in_([s.id for s in steps])
            )
        )
        parent = session.get(Job, job_id)
        assert parent is not None and parent.cost_micro_usd == ledger > 0
        assert parent.output == steps[2].output
