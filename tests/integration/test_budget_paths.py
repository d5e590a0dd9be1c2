"""Budgets hold on every path (issue 22): pipelines, re-drives, cancels, session turns.

Real API, Celery workers, simulator, Redis and Postgres. The shared ``cluster``
serves the pipelines; the other paths get a private cluster with a slow, a
failing or a plain deployment, each on its own tier so a job pinned to the tier
never falls back to another.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select, update

from loadtests._cluster import Cluster as PrivateCluster
from loadtests._cluster import ClusterSpec
from orchestrator.core.catalog import load_catalog
from orchestrator.core.schemas import JobRequest
from orchestrator.costs.bounds import pipeline_upper_bound
from orchestrator.costs.budgets import Budgets, TenantPolicy, set_budget
from orchestrator.pipelines.planner import route_job
from orchestrator.store import budget_holds, repo
from orchestrator.store.budget_holds import HELD
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry, new_id, utcnow
from tests.integration.conftest import Cluster
from tests.integration.reliability import MakeCluster, deployment, make_cluster
from tests.integration.test_costs import api, new_tenant, wait_jobs

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]
LIMIT = 50_000  # $0.05 a day
TEXT = " ".join(f"w{i}" for i in range(400))  # 1,889 characters: ~470 tokens


def daily(client: httpx.Client) -> dict[str, Any]:
    """The caller's daily budget as ``GET /v1/usage`` shows it (spent, reserved, limit)."""
    budgets = client.get("/v1/usage").json()["budgets"]
    found: dict[str, Any] = next(b for b in budgets if b["period"] == "daily")
    return found


def ledger_total(engine: Any, tenant_id: str) -> int:
    with session_scope(engine) as session:
        total = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.cost_micro_usd), 0)).where(
                LedgerEntry.tenant_id == tenant_id
            )
        )
    return int(total or 0)


def two_steps(repeats: int, *, model: str = "sim-gpt-4.1") -> dict[str, Any]:
    """A two-step pipeline whose second step sends the job's input ``repeats`` times."""
    return {
        "prompt": TEXT,
        "steps": [
            {"name": "first", "tier": "fast", "prompt": "Summarise: {input}", "max_tokens": 32},
            {"name": "second", "model": model, "prompt": "{input}\n" * repeats, "max_tokens": 32},
        ],
    }


def test_a_pipeline_repeating_its_input_200_times_is_refused_by_a_5_cent_budget(
    cluster: Cluster,
) -> None:
    # Given a tenant with a $0.05 daily budget
    tenant_id, key = new_tenant(cluster, {"daily_usd": 0.05})
    with api(cluster, key) as client:
        # When it submits a two-step pipeline whose second step repeats {input} 200 times
        # (378,000 characters, ~94,500 prompt tokens on a $2/M deployment: about $0.19)
        answer = client.post("/v1/jobs", json=two_steps(200))
        if answer.status_code == 202:  # today: admitted on step 0's reservation alone
            wait_jobs(client, [answer.json()["id"]])
        # Then it is refused with the budget's 402 before anything runs
        spent = ledger_total(cluster.engine, tenant_id)
        assert answer.status_code == 402, f"{answer.status_code}: spent {spent}"
        error = answer.json()["error"]
        assert error["type"] == "budget_exceeded" and error["field"] == "budget.daily"
        assert "may cost up to $0.19" in error["message"], error["message"]
        # And nothing was spent or is held
        state = daily(client)
        assert state["spent_micro_usd"] == 0 and state["reserved_micro_usd"] == 0
    assert ledger_total(cluster.engine, tenant_id) == 0


IMPOSSIBLE = {  # the simulator answers "example" (7 characters): every answer is rejected
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 40}},
}


def pipelines() -> list[dict[str, Any]]:
    """Pipelines of every shape a tenant may send: repeated inputs, repeated outputs,
    unpinned steps, a cascade, and one that fails after billed repairs and escalations."""
    return [
        two_steps(12, model="sim-claude-sonnet-4"),
        {
            "prompt": TEXT,
            "steps": [
                {"name": "a", "prompt": "Explain step by step why: {input}", "max_tokens": 300},
                {"name": "b", "prompt": "{steps.a.output}\n" * 12, "max_tokens": 300},
                {"name": "c", "prompt": "Summarise {steps.b.output} {input}", "max_tokens": 64},
            ],
        },
        {
            "prompt": TEXT,
            "strategy": "cascade",
            "steps": [
                {"name": "draft", "tier": "fast", "prompt": "{input}" * 3, "max_tokens": 200},
                {
                    "name": "fields",
                    "prompt": "Fields of {steps.draft.output}",
                    "json_schema": IMPOSSIBLE,
                },
            ],
        },
    ]


def test_a_5_cent_tenant_never_spends_more_whatever_pipelines_it_sends(cluster: Cluster) -> None:
    # Given a tenant with a $0.05 daily budget
    tenant_id, key = new_tenant(cluster, {"daily_usd": 0.05})
    admitted: list[str] = []
    refused_idle = 0
    with api(cluster, key) as client:
        # When it keeps sending pipelines of every shape until even an idle budget refuses
        # each of them
        deadline = time.monotonic() + 150
        while refused_idle < len(pipelines()) and time.monotonic() < deadline:
            refused_idle = 0
            for body in pipelines():
                answer = client.post("/v1/jobs", json=body)
                if answer.status_code == 202:
                    admitted.append(answer.json()["id"])
                else:
                    assert answer.status_code == 402, answer.text
                    refused_idle += 0 if _running(client, admitted) else 1
            wait_jobs(client, admitted)
        views = wait_jobs(client, admitted)
        state = daily(client)
    spent = ledger_total(cluster.engine, tenant_id)
    print(f"{len(admitted)} pipelines admitted, spent {spent} of {LIMIT}; {state}")
    # Then it spent at most its budget, and something: the budget was used, not refused
    assert admitted and refused_idle == len(pipelines())
    assert 0 < spent <= LIMIT
    # And the counters count every step once and hold nothing once all are final
    assert state["spent_micro_usd"] == spent and state["reserved_micro_usd"] == 0
    # And a pipeline whose step failed after billed repairs released what it did not spend
    assert any(v["status"] == "failed" and v["cost_micro_usd"] > 0 for v in views)
    assert sum(v["cost_micro_usd"] for v in views) == spent


def _running(client: httpx.Client, ids: list[str]) -> bool:
    final = {"succeeded", "failed", "cancelled", "expired"}
    return any(client.get(f"/v1/jobs/{i}").json()["status"] not in final for i in ids[-6:])


def test_each_step_draws_its_cost_from_the_pipeline_and_the_rest_is_released(
    cluster: Cluster,
) -> None:
    # Given a tenant with a budget and a three-step pipeline
    tenant_id, key = new_tenant(cluster, {"daily_usd": 5})
    body = pipelines()[1]
    request, catalog = JobRequest.model_validate(body), load_catalog(cluster.settings)
    bound = pipeline_upper_bound(request, catalog, first_plan=route_job(request, catalog).plan)
    with api(cluster, key) as client:
        # When it is admitted, it holds the bound of all three steps
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        state = daily(client)
        held = state["spent_micro_usd"] + state["reserved_micro_usd"]
        assert held == bound.total_micro_usd > bound.steps[0].max_cost_micro_usd
        # Then as its steps finish, spent + still held never grows, and nothing is counted
        # twice; once it is final the rest is released
        seen: list[tuple[int, int]] = []
        while client.get(f"/v1/jobs/{job_id}").json()["status"] == "running":
            state = daily(client)
            seen.append((state["spent_micro_usd"], state["reserved_micro_usd"]))
            time.sleep(0.05)
        wait_jobs(client, [job_id])
        time.sleep(0.5)  # the last step's settlement follows its commit
        final = daily(client)
    spent = ledger_total(cluster.engine, tenant_id)
    assert all(s + r <= held for s, r in seen), seen
    assert final["spent_micro_usd"] == spent > 0 and final["reserved_micro_usd"] == 0


def budget_cluster(make: MakeCluster, **simulator: Any) -> PrivateCluster:
    """A private cluster: a slow deployment (fast tier), a failing one (code tier) and a
    plain one (reasoning tier), $1/M in and $4/M out each."""
    models = {"sim-slow": {"latency_p50_ms": 1500}, **simulator}
    return make(
        ClusterSpec(
            deployments=[
                deployment("dep-slow", "sim-slow"),
                deployment("dep-bad", "sim-bad", tiers=["code"]),
                deployment("dep-plain", "sim-plain", tiers=["reasoning"]),
            ],
            simulator={"models": models},
            api=True,
        )
    )


def private_api(cluster: PrivateCluster) -> httpx.Client:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    return httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30)


def set_daily(cluster: PrivateCluster, micro_usd: int) -> str:
    """Give the cluster's tenant a daily budget; its id (every process sees it within 2 s)."""
    with session_scope(cluster.engine) as session:
        tenant_id = repo.tenant_for_api_key(session, api_key=cluster.api_key)
        assert tenant_id is not None
        set_budget(session, tenant_id=tenant_id, policy=TenantPolicy(micro_usd, None))
    time.sleep(2.2)
    return tenant_id


def test_a_redrive_reserves_like_a_new_submission_and_is_refused_over_budget(
    make_cluster: MakeCluster,
) -> None:
    # Given a batch whose jobs all failed (the provider refused them, unbilled)
    cluster = budget_cluster(make_cluster, **{"sim-bad": {"error_rates": {"400": 1.0}}})
    tenant_id = set_daily(cluster, 1_000_000)
    jobs = [{"prompt": f"hello {i}", "tier": "code", "max_tokens": 200} for i in range(20)]
    with private_api(cluster) as client:
        batch_id = client.post("/v1/batches", json=jobs).json()["id"]
        ids = cluster.batch_job_ids(batch_id)
        assert set(cluster.wait_final(ids, timeout_s=60).values()) == {"failed"}
        # And a budget that now refuses a new job of the same size
        set_daily(cluster, 500)
        httpx.put(f"{cluster.sim_base}/_sim/config", json={}).raise_for_status()  # healed
        assert client.post("/v1/jobs", json=jobs[0]).status_code == 402
        # When the tenant re-drives the batch, or one of its jobs
        batch = client.post(f"/v1/batches/{batch_id}/redrive")
        one = client.post(f"/v1/jobs/{ids[0]}/redrive")
        # Then both are refused with the same 402 as a new submission, and nothing runs
        assert batch.status_code == 402, batch.text
        assert one.status_code == 402, one.text
        assert batch.json()["error"]["type"] == "budget_exceeded"
        time.sleep(1.5)
        assert set(cluster.statuses(ids).values()) == {"failed"}
        assert ledger_total(cluster.engine, tenant_id) == 0
        assert daily(client)["reserved_micro_usd"] == 0
        # And with room for the batch, a re-drive reserves it, runs it and settles it
        set_daily(cluster, 1_000_000)
        assert client.post(f"/v1/batches/{batch_id}/redrive").status_code == 200
        assert set(cluster.wait_final(ids, timeout_s=60).values()) == {"succeeded"}
        time.sleep(0.5)
        state = daily(client)
    spent = ledger_total(cluster.engine, tenant_id)
    assert state["spent_micro_usd"] == spent > 0 and state["reserved_micro_usd"] == 0


def test_cancelling_a_running_job_counts_what_it_spent_at_once(make_cluster: MakeCluster) -> None:
    # Given a slow deployment and a job whose answers all fail their schema: its first
    # answer is billed and rejected, and its repair call is in flight
    cluster = budget_cluster(make_cluster)
    tenant_id = set_daily(cluster, 1_000_000)
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": IMPOSSIBLE}}
    body = {"prompt": "Name someone.", "tier": "fast", "max_tokens": 64, "response_format": fmt}
    with private_api(cluster) as client:
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        _wait_attempts(cluster, job_id, 1)
        # When the tenant cancels it
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        # Then the budget counts what it already spent at once, not when a hold expires
        state = daily(client)
        billed = ledger_total(cluster.engine, tenant_id)
        assert billed > 0 and state["spent_micro_usd"] == billed, (state, billed)
        # And once the call in flight comes back (billed all the same), it counts too and
        # nothing stays held
        deadline = time.monotonic() + 10
        while daily(client)["reserved_micro_usd"] and time.monotonic() < deadline:
            time.sleep(0.1)
        state = daily(client)
    billed = ledger_total(cluster.engine, tenant_id)
    assert state["spent_micro_usd"] == billed and state["reserved_micro_usd"] == 0
    assert cluster.statuses([job_id]) == {job_id: "cancelled"}
    # And a pipeline cancelled after its first step, while its second is in flight, counts
    # both and gives back what its third step would have needed
    steps = [{"prompt": f"Say {w}: {{input}}", "tier": "fast"} for w in ("a", "b", "c")]
    with private_api(cluster) as client:
        job_id = client.post("/v1/jobs", json={"prompt": "hi", "steps": steps}).json()["id"]
        view: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while len(view.get("steps") or []) < 2 or view["steps"][1]["status"] != "running":
            assert time.monotonic() < deadline, view
            view = client.get(f"/v1/jobs/{job_id}").json()
            time.sleep(0.05)
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        assert daily(client)["spent_micro_usd"] == ledger_total(cluster.engine, tenant_id)
        deadline = time.monotonic() + 10
        while daily(client)["reserved_micro_usd"] and time.monotonic() < deadline:
            time.sleep(0.1)
        state = daily(client)
    billed = ledger_total(cluster.engine, tenant_id)
    assert state["spent_micro_usd"] == billed and state["reserved_micro_usd"] == 0


def _wait_attempts(cluster: PrivateCluster, job_id: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        with session_scope(cluster.engine) as session:
            found = session.scalar(select(func.count()).where(Attempt.job_id == job_id)) or 0
        if found >= count:
            return
        assert time.monotonic() < deadline, f"{found} attempts"
        time.sleep(0.05)


def test_a_session_turn_that_brings_a_long_history_is_held_to_the_budget(
    make_cluster: MakeCluster,
) -> None:
    # Given a tenant with a $0.06 budget and a session whose first turn sent ~40,000 tokens
    cluster = budget_cluster(make_cluster)
    tenant_id = set_daily(cluster, 60_000)
    first = {"session_id": "s1", "tier": "reasoning", "max_tokens": 64}
    with private_api(cluster) as client:
        turn = client.post("/v1/jobs", json={**first, "prompt": "lorem ipsum " * 13_000})
        assert turn.status_code == 202, turn.text
        assert cluster.wait_final([turn.json()["id"]], 60) == {turn.json()["id"]: "succeeded"}
        # When it sends a short next turn (admitted on its own size), whose call carries
        # the whole history
        nxt = client.post("/v1/jobs", json={**first, "prompt": "And then?"})
        assert nxt.status_code == 202, nxt.text
        job_id = nxt.json()["id"]
        cluster.wait_final([job_id], 60)
        view = client.get(f"/v1/jobs/{job_id}").json()
        time.sleep(0.5)
        state = daily(client)
    # Then the call was refused before it was made, naming the budget, and the tenant
    # spent no more than its budget
    spent = ledger_total(cluster.engine, tenant_id)
    assert view["status"] == "failed" and "daily budget" in (view["error"] or ""), view
    assert spent <= 60_000 and state["spent_micro_usd"] == spent
    assert state["reserved_micro_usd"] == 0


def test_settling_from_many_places_at_once_counts_each_cost_once(
    database_url: str, redis_url: str, key_prefix: str
) -> None:
    # Given a pipeline whose parent holds $0.01 of a budget, and a step billed $0.003
    engine = get_engine(database_url)
    client = redis.Redis.from_url(redis_url)
    budgets = Budgets(client, engine, prefix=f"{key_prefix}settle:", ttl_s=0)
    with session_scope(engine) as session:
        tenant_id = repo.create_tenant(session, name=f"settle-{secrets.token_hex(4)}").id
        set_budget(session, tenant_id=tenant_id, policy=TenantPolicy(1_000_000, None))
    parent, first, second = new_id("job"), new_id("job"), new_id("job")
    budgets.reserve(tenant_id, parent, 10_000, hold_s=600)
    base = {"tenant_id": tenant_id, "tier": "fast", "priority": 0, "created_at": utcnow()}
    steps = {"prompt": "x", "steps": [{"prompt": "a"}, {"prompt": "b"}]}
    with session_scope(engine) as session:
        repo.insert_jobs(
            session,
            rows=[{**base, "id": parent, "status": "running", "request": steps, HELD: 10_000}],
        )
        step = {**base, "parent_job_id": parent, "request": {"prompt": "a"}}
        repo.insert_jobs(
            session,
            rows=[
                {
                    **step,
                    "id": first,
                    "step_index": 0,
                    "status": "succeeded",
                    "cost_micro_usd": 3_000,
                }
            ],
        )

    def settle(job_id: str) -> None:
        with session_scope(engine) as session:
            found = budget_holds.settle(session, Job.id == job_id)
        budgets.apply(found)

    def status() -> tuple[int, int]:
        day = next(s for s in budgets.status(tenant_id) if s.period == "daily")
        return day.spent_micro_usd, day.reserved_micro_usd

    # When eight settlers settle the step at once (a worker, a cancel, the reconciler...)
    threads = [threading.Thread(target=settle, args=(first,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then its cost is counted once and drawn from the pipeline's hold
    assert status() == (3_000, 7_000)
    # When the next step fails after $0.0025 and the pipeline with it
    with session_scope(engine) as session:
        repo.insert_jobs(
            session,
            rows=[
                {**step, "id": second, "step_index": 1, "status": "failed", "cost_micro_usd": 2_500}
            ],
        )
        session.execute(update(Job).where(Job.id == parent).values(status="failed"))
    settle(second)
    settle(second)
    # Then it is counted once and the pipeline's leftover is given back
    assert status() == (5_500, 0)
    # And a call that was in flight and billed after the end counts, and nothing more
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == second).values(cost_micro_usd=2_900))
    settle(second)
    settle(parent)
    assert status() == (5_900, 0)
    with session_scope(engine) as session:
        row = session.get(Job, parent)
        assert row is not None and row.budget_held_micro_usd == 0
    client.close()
