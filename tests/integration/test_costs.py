"""Costs on the real cluster: the cost objective and breakers, budgets, usage and its plot.

Real simulator, API, Celery workers, Redis and Postgres (the ``cluster`` fixture);
only the provider edge is simulated.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.catalog import load_catalog
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, LedgerEntry
from tests.integration.conftest import ADMIN_KEY, Cluster
from workers.guards import BreakerPolicy, CircuitBreaker

pytestmark = pytest.mark.integration
FINAL = {"succeeded", "failed", "cancelled", "expired"}


def api(cluster: Cluster, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or cluster.api_key}"}
    return httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30)


def new_tenant(cluster: Cluster, budget: dict[str, Any] | None = None) -> tuple[str, str]:
    """A fresh tenant (id, key), with ``budget`` set through the admin API."""
    with api(cluster, ADMIN_KEY) as admin:
        made = admin.post("/admin/tenants", json={"name": f"costs-{secrets.token_hex(4)}"})
        assert made.status_code == 201, made.text
        tenant = made.json()
        if budget is not None:
            put = admin.put(f"/admin/tenants/{tenant['id']}/budget", json=budget)
            assert put.status_code == 200, put.text
    return tenant["id"], tenant["api_key"]


def wait_batch(client: httpx.Client, batch_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        view: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if view["status"] == "completed":
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.3)


def wait_jobs(client: httpx.Client, ids: list[str], timeout_s: float = 120) -> list[dict[str, Any]]:
    deadline, done = time.monotonic() + timeout_s, {}
    while len(done) < len(ids):
        for job_id in ids:
            if job_id not in done:
                view = client.get(f"/v1/jobs/{job_id}").json()
                if view["status"] in FINAL:
                    done[job_id] = view
        assert time.monotonic() < deadline, f"{len(done)}/{len(ids)} final"
        time.sleep(0.3)
    return [done[i] for i in ids]


def served_by(client: httpx.Client, batch_id: str) -> Counter[str]:
    lines = client.get(f"/v1/batches/{batch_id}/results").text.splitlines()
    return Counter(json.loads(line)["deployment"] for line in lines)


@pytest.fixture
def breaker(cluster: Cluster) -> Iterator[CircuitBreaker]:
    client = redis.Redis.from_url(cluster.settings.effective_redis_url)
    found = CircuitBreaker(client, prefix=cluster.settings.redis_key_prefix, policy=BreakerPolicy())
    yield found
    for dep in load_catalog(cluster.settings).deployments:
        client.delete(found.key(dep))
    client.close()


def test_objective_cost_uses_the_cheapest_healthy_deployment(
    cluster: Cluster, breaker: CircuitBreaker
) -> None:
    # Given fast-tier jobs submitted as a batch whose objective is cost
    jobs = [
        {"prompt": f"What is the capital of Peru? ({i})", "max_tokens": 64, "tier": "fast"}
        for i in range(8)
    ]
    catalog = load_catalog(cluster.settings)
    with api(cluster) as client:
        first = client.post("/v1/batches?objective=cost", json=jobs)
        assert first.status_code == 202, first.text
        view = wait_batch(client, first.json()["id"])
        # Then every job ran on the cheapest fast deployment, and the batch's summary
        # agrees with its jobs and its ledger
        assert served_by(client, view["id"]) == {"sim-gpt-4o-mini": 8}
        summary = client.get(f"/v1/batches/{view['id']}").json()["cost_summary"]
        assert summary["ledger_micro_usd"] == summary["jobs_micro_usd"] == view["cost_micro_usd"]
        assert summary["by_deployment"] == {"sim-gpt-4o-mini": view["cost_micro_usd"]} != {}
        # When that deployment's breaker is open (its shared state in Redis)
        breaker.trip(catalog.get("sim-gpt-4o-mini"), for_s=120)
        second = client.post("/v1/batches?objective=cost", json=jobs)
        view = wait_batch(client, second.json()["id"])
        # Then the next cheapest serves them all
        assert served_by(client, view["id"]) == {"sim-gpt-4.1": 8}
        job = client.get(f"/v1/batches/{view['id']}/results").text.splitlines()[0]
        routing = client.get(f"/v1/jobs/{json.loads(job)['job_id']}").json()
        objective = [s for s in routing["routing"] if s["step"] == "objective"]
        assert objective and objective[0]["choice"] == "cost"
        assert objective[0]["reasons"][0].startswith("sim-gpt-4o-mini: expected $")


def submit_until_refused(
    cluster: Cluster, key: str, count: int, accepted: list[str], refusals: list[dict[str, Any]]
) -> None:
    """Submit ``count`` jobs one by one, keeping the ids admitted and the 402 bodies."""
    with api(cluster, key) as client:
        for i in range(count):
            body = {"prompt": f"Name a colour, please. ({i})", "max_tokens": 200}
            answer = client.post("/v1/jobs", json={**body, "objective": "quality"})
            if answer.status_code == 202:
                accepted.append(answer.json()["id"])
            else:
                assert answer.status_code == 402, answer.text
                refusals.append(answer.json())
                time.sleep(0.3)  # jobs in flight settle meanwhile, freeing their reservations


def test_budget_holds_under_concurrent_workers_and_the_402_names_it(cluster: Cluster) -> None:
    # Given a second fast worker, tenant A with a $0.01 daily budget and tenant B without
    extra = Supervisor(env=cluster.env, log_dir=cluster.settings.state_path / "logs-costs")
    extra.spawn("worker-fast-2", "worker", "--tier", "fast")
    limit = 10_000
    a_id, a_key = new_tenant(cluster, {"daily_usd": 0.01, "warn_ratio": 0.5})
    b_id, b_key = new_tenant(cluster)
    accepted: dict[str, list[str]] = {a_id: [], b_id: []}
    refusals: dict[str, list[dict[str, Any]]] = {a_id: [], b_id: []}
    try:
        # When both submit concurrently, four threads each, while the workers run the jobs
        threads = [
            threading.Thread(
                target=submit_until_refused, args=(cluster, k, 25, accepted[t], refusals[t])
            )
            for t, k in ((a_id, a_key), (b_id, b_key))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for tenant, key in ((a_id, a_key), (b_id, b_key)):
            with api(cluster, key) as client:
                wait_jobs(client, accepted[tenant])
    finally:
        extra.stop()
    with session_scope(cluster.engine) as session:
        spent = {
            t: int(
                session.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.cost_micro_usd), 0)).where(
                        LedgerEntry.tenant_id == t
                    )
                )
                or 0
            )
            for t in (a_id, b_id)
        }
        dearest = max(
            session.scalar(select(func.max(Job.cost_micro_usd)).where(Job.tenant_id == a_id)) or 0,
            1,
        )
    # Then A was refused with a 402 that names the budget and the spend, and never
    # spent more than its budget plus one job's cost
    print(f"budget {limit}: A spent {spent[a_id]} in {len(accepted[a_id])} jobs, refused")
    print(f"  {len(refusals[a_id])}; B spent {spent[b_id]}; first 402: {refusals[a_id][:1]}")
    assert refusals[a_id], "tenant A was never refused"
    error = refusals[a_id][0]["error"]
    assert error["type"] == "budget_exceeded" and error["field"] == "budget.daily"
    assert "daily budget" in error["message"] and "spent $" in error["message"]
    one_job_max = 24 * 2 + 200 * 8  # ~24 prompt tokens at $2/M + 200 output tokens at $8/M
    assert spent[a_id] <= limit + one_job_max
    assert spent[a_id] > limit - one_job_max, spent  # it filled up, not refused at once
    assert dearest <= one_job_max
    # And B, with no budget, was never refused and ran everything
    assert not refusals[b_id] and len(accepted[b_id]) == 100 and spent[b_id] > spent[a_id]
    # And A's usage shows the spend and a warning over half its budget
    with api(cluster, a_key) as client:
        usage = client.get("/v1/usage", params={"group_by": "tier,day"}).json()
    assert usage["total"]["cost_micro_usd"] == spent[a_id]
    daily = next(b for b in usage["budgets"] if b["period"] == "daily")
    assert daily["warning"] is True and daily["spent_micro_usd"] == spent[a_id]
    assert usage["warnings"] and usage["warnings"][0].startswith("daily budget")
    # And the API's metrics count the refusals and show the warning
    metrics = httpx.get(f"{cluster.api_url}/metrics", timeout=10).text
    assert 'switchyard_budget_refusals_total{period="daily"}' in metrics
    assert 'switchyard_budget_tenants_warning{period="daily"}' in metrics
    assert a_id not in metrics  # counted, never named


def test_usage_groups_validates_and_shows_unbilled_failures(cluster: Cluster) -> None:
    tenant_id, key = new_tenant(cluster)
    sim = httpx.Client(base_url=f"http://127.0.0.1:{cluster.settings.simulator_port}")
    original = sim.get("/_sim/config").json()
    # Given codestral failing every call with a 503, so code jobs fall back unbilled
    failing = {
        **original,
        "models": {**original["models"], "codestral-latest": {"error_rates": {"503": 1.0}}},
    }
    assert sim.put("/_sim/config", json=failing).status_code == 200
    try:
        with api(cluster, key) as client:
            ids = [
                client.post(
                    "/v1/jobs",
                    json={
                        "prompt": f"def add{i}(a, b): return a + b",
                        "tier": "code",
                        "objective": "cost",
                    },
                ).json()["id"]
                for i in range(2)
            ]
            views = wait_jobs(client, ids)
            fast = client.post("/v1/batches", json=[{"prompt": "Hello there?"}] * 3).json()
            wait_batch(client, fast["id"])
            # (and a deterministic question asked twice: the second is a cache hit)
            asked = {
                "prompt": f"Capital of Peru? {secrets.token_hex(4)}",
                "temperature": 0,
                "tier": "fast",
            }
            wait_jobs(client, [client.post("/v1/jobs", json=asked).json()["id"]])
            wait_jobs(client, [client.post("/v1/jobs", json=asked).json()["id"]])
            # When the tenant asks for its usage by tier and day, and by kind
            by_tier = client.get("/v1/usage", params={"group_by": "tier,day"}).json()
            by_kind = client.get("/v1/usage", params={"group_by": "kind"}).json()
            bad_group = client.get("/v1/usage", params={"group_by": "tier,colour"})
            bad_since = client.get("/v1/usage", params={"since": "yesterday"})
    finally:
        sim.put("/_sim/config", json=original)
        sim.close()
    # Then the jobs succeeded on the fallback, each after failed, unbilled calls
    assert {v["status"] for v in views} == {"succeeded"}
    assert all(v["deployment"] != "sim-codestral" for v in views)
    with session_scope(cluster.engine) as session:
        ledger = int(
            session.scalar(
                select(func.sum(LedgerEntry.cost_micro_usd)).where(
                    LedgerEntry.tenant_id == tenant_id
                )
            )
            or 0
        )
        jobs = int(
            session.scalar(select(func.sum(Job.cost_micro_usd)).where(Job.tenant_id == tenant_id))
            or 0
        )
    # And the report adds up to the ledger, integer micro-USD, one row per tier and day
    assert by_tier["total"]["cost_micro_usd"] == ledger == jobs > 0
    assert {(r["tier"], r["day"]) for r in by_tier["data"]} == {
        (t, by_tier["until"]) for t in ("code", "fast")
    }
    kinds = {r["kind"]: r for r in by_kind["data"]}
    assert kinds["unbilled"]["unbilled_attempts"] >= 2 and kinds["unbilled"]["cost_micro_usd"] == 0
    assert kinds["billed"]["billed_calls"] == 6 and kinds["billed"]["cost_micro_usd"] == ledger
    assert kinds["cache_hit"]["cache_hits"] == 1 and kinds["cache_hit"]["cost_micro_usd"] == 0
    # And bad parameters are 422s naming the field
    assert bad_group.status_code == 422 and bad_group.json()["error"]["field"] == "group_by"
    assert bad_since.status_code == 422 and bad_since.json()["error"]["field"] == "since"


def test_usage_plot_writes_a_png(cluster: Cluster, tmp_path: Any) -> None:
    # Given a tenant that has spent something
    _, key = new_tenant(cluster)
    with api(cluster, key) as client:
        batch = client.post("/v1/batches", json=[{"prompt": "Hi!"}, {"prompt": "Hello?"}]).json()
        wait_batch(client, batch["id"])
    # When `switchyard usage --plot` runs against the API
    path = tmp_path / "spend.png"
    env = {
        **os.environ,
        **cluster.env,
        "SWITCHYARD_API_URL": cluster.api_url,
        "SWITCHYARD_API_KEY": key,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli.main",
            "usage",
            "--group-by",
            "tier,day",
            "--plot",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it prints the table and writes a PNG chart
    assert done.returncode == 0, done.stderr
    assert "fast" in done.stdout and "plot written" in done.stdout
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_a_tenant_default_strategy_applies_to_jobs_that_name_none(cluster: Cluster) -> None:
    # Given a tenant whose default strategy is cascade (admin API)
    _, key = new_tenant(cluster, {"strategy": "cascade"})
    with api(cluster, key) as client:
        # When it submits a job naming no strategy, and one naming "single"
        plain = client.post("/v1/jobs", json={"prompt": "Name a colour.", "max_tokens": 8})
        single = {"prompt": "Name a colour.", "max_tokens": 8, "strategy": "single"}
        chosen = client.post("/v1/jobs", json=single)
        assert plain.status_code in (200, 201, 202), plain.text
        assert chosen.status_code in (200, 201, 202), chosen.text
        routed = client.get(f"/v1/jobs/{plain.json()['id']}").json()["routing"]
        own = client.get(f"/v1/jobs/{chosen.json()['id']}").json()["routing"]
    # Then the first was routed as a cascade (cheapest first), the second as it asked
    assert [s["choice"] for s in routed if s["step"] == "strategy"] == ["cascade"]
    assert not [s for s in own if s["step"] == "strategy"]
    # And an unknown strategy is refused with a 422 naming the field
    with api(cluster, ADMIN_KEY) as admin:
        tenant_id, _ = new_tenant(cluster)
        bad = admin.put(f"/admin/tenants/{tenant_id}/budget", json={"strategy": "loudest"})
    assert bad.status_code == 422 and "strategy" in bad.text
