"""The response cache through the real cluster: coalescing, tenant scoping, hits and headers.

Real API, Redis, Postgres, Celery workers and the provider simulator (the
session's ``cluster``); the simulator's ``/_sim/stats`` counts the provider
calls that really happened.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from tests.integration.conftest import ADMIN_KEY, Cluster

pytestmark = pytest.mark.integration
FINAL = {"succeeded", "failed", "cancelled", "expired"}


def stats(cluster: Cluster) -> dict[str, Any]:
    sim = cluster.settings.simulator_url.removesuffix("/v1")
    models: dict[str, Any] = httpx.get(f"{sim}/_sim/stats", timeout=10).json()["models"]
    return {name: (m["received"], m["served"], m["errors"]) for name, m in models.items()}


def question() -> dict[str, Any]:
    """A deterministic request nobody has asked before."""
    text = f"What is the capital of Peru? ({secrets.token_hex(6)})"
    return {"messages": [{"role": "user", "content": text}], "temperature": 0, "tier": "fast"}


def wait_jobs(cluster: Cluster, job_ids: list[str], timeout_s: float = 120) -> list[Job]:
    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope(cluster.engine) as session:
            jobs = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
            session.expunge_all()
        done = len(jobs) == len(job_ids) and all(j.status in FINAL for j in jobs)
        if done or time.monotonic() > deadline:
            return jobs
        time.sleep(0.3)


def submit(cluster: Cluster, key: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = httpx.post(
        f"{cluster.api_url}/v1/jobs",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def finished(cluster: Cluster, key: str, body: dict[str, Any], **headers: str) -> Job:
    job = submit(cluster, key, body, **headers)
    return wait_jobs(cluster, [job["id"]])[0]


async def _post_all(cluster: Cluster, body: dict[str, Any], count: int) -> list[str]:
    limits = httpx.Limits(max_connections=count)
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    async with httpx.AsyncClient(limits=limits, timeout=120, headers=headers) as client:
        replies = await asyncio.gather(
            *(client.post(f"{cluster.api_url}/v1/jobs", json=body) for _ in range(count))
        )
    assert all(r.status_code == 202 for r in replies), {r.status_code for r in replies}
    return [r.json()["id"] for r in replies]


def calls_with(cluster: Cluster, model: str, text: str) -> int:
    """How many of the simulator's recent requests for ``model`` carried ``text``."""
    sim = cluster.settings.simulator_url.removesuffix("/v1")
    recent = httpx.get(f"{sim}/_sim/requests", params={"model": model}, timeout=10).json()
    return sum(1 for r in recent["requests"] if text in json.dumps(r["body"]))


def test_500_identical_concurrent_requests_make_one_provider_call(cluster: Cluster) -> None:
    # Given a deterministic request nobody has asked yet
    body, before = question(), stats(cluster)
    # When 500 identical copies are submitted at the same time
    job_ids = asyncio.run(_post_all(cluster, body, 500))
    jobs = wait_jobs(cluster, job_ids, timeout_s=180)
    # Then every one succeeded with the same answer
    assert len(jobs) == 500 and {j.status for j in jobs} == {"succeeded"}
    assert len({j.output for j in jobs}) == 1
    # And exactly one job paid for it; the 499 others are marked hits at zero cost
    paid = [j for j in jobs if not j.cache_hit]
    assert len(paid) == 1 and paid[0].cost_micro_usd > 0, [(j.id, j.attempts) for j in paid]
    # And the simulator received exactly one call carrying it (it keeps the last 20
    # bodies per model; other tests' leftover jobs may call it too, so count ours)
    model = str(paid[0].model)
    during = stats(cluster)[model][0] - before.get(model, (0,))[0]
    assert 1 <= during <= 20, during
    assert calls_with(cluster, model, body["messages"][0]["content"]) == 1
    assert sum(j.cost_micro_usd for j in jobs if j.cache_hit) == 0
    with session_scope(cluster.engine) as session:
        ledger = list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id.in_(job_ids))))
        assert len(ledger) == 500
        assert [e.job_id for e in ledger if not e.cache_hit] == [paid[0].id]
        assert all(e.cost_micro_usd == 0 for e in ledger if e.cache_hit)


def test_a_tenant_never_receives_an_answer_cached_by_another(cluster: Cluster) -> None:
    # Given tenant A's answer is in the cache
    key_b = ensure_tenant_key(
        cluster.engine, state_dir=cluster.settings.state_path / "b", tenant="it-cache-b"
    )
    body = question()
    first_a = finished(cluster, cluster.api_key, body)
    assert first_a.status == "succeeded" and not first_a.cache_hit
    again_a = submit(cluster, cluster.api_key, body)
    assert again_a["status"] == "succeeded" and again_a["cache_hit"] is True
    text, model = body["messages"][0]["content"], str(first_a.model)
    assert calls_with(cluster, model, text) == 1
    # When tenant B sends the identical request
    first_b = finished(cluster, key_b, body)
    # Then B's job called the provider itself: no hit, its own cost
    assert first_b.status == "succeeded" and not first_b.cache_hit
    assert first_b.cost_micro_usd > 0 and calls_with(cluster, model, text) == 2
    # And B's next identical request hits B's own entry, not A's job
    again_b = submit(cluster, key_b, body)
    assert again_b["cache_hit"] is True and again_b["id"] != again_a["id"]
    assert calls_with(cluster, model, text) == 2
    # And neither tenant can read the other's jobs
    headers = {"Authorization": f"Bearer {key_b}"}
    foreign = httpx.get(f"{cluster.api_url}/v1/jobs/{again_a['id']}", headers=headers)
    assert foreign.status_code == 404


def test_chat_completion_hit_is_marked_and_costs_nothing(cluster: Cluster) -> None:
    # Given an answered deterministic chat request
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    chat = {"model": "tier:fast", **{k: v for k, v in question().items() if k != "tier"}}
    url = f"{cluster.api_url}/v1/chat/completions"
    first = httpx.post(url, json=chat, headers=headers, timeout=60)
    assert first.status_code == 200 and "x-switchyard-cache" not in first.headers
    text = chat["messages"][0]["content"]
    model = first.json()["model"]
    assert calls_with(cluster, model, text) == 1
    # When it is asked again
    hit = httpx.post(url, json=chat, headers=headers, timeout=60)
    # Then it is answered from the cache: same text, marked, zero cost, no provider call
    assert hit.status_code == 200 and hit.headers["x-switchyard-cache"] == "hit"
    assert hit.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
    assert hit.json()["switchyard"]["cache_hit"] is True
    assert hit.headers["x-switchyard-cost-micro-usd"] == "0"
    assert calls_with(cluster, model, text) == 1
    # And its job, attempt and zero-cost ledger row are written (just behind the answer)
    job = wait_jobs(cluster, [hit.headers["x-switchyard-job-id"]], timeout_s=10)
    assert len(job) == 1 and job[0].cache_hit and job[0].status == "succeeded"
    with session_scope(cluster.engine) as session:
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job[0].id)).one()
        attempt = session.scalars(select(Attempt).where(Attempt.job_id == job[0].id)).one()
        assert entry.cache_hit and entry.cost_micro_usd == 0 and attempt.cache_hit
    # When the client says Cache-Control: no-cache, the provider is called again
    fresh = httpx.post(url, json=chat, headers={**headers, "Cache-Control": "no-cache"})
    assert fresh.status_code == 200 and "x-switchyard-cache" not in fresh.headers
    assert calls_with(cluster, model, text) == 2


def test_cache_modes_per_request(cluster: Cluster) -> None:
    # Given a non-deterministic request: not cached by default
    body = {**question(), "temperature": 0.9}
    assert not finished(cluster, cluster.api_key, body).cache_hit
    assert not finished(cluster, cluster.api_key, body).cache_hit
    # When a request asks for "write" and the next for "read", the second is a hit
    finished(cluster, cluster.api_key, {**body, "cache": "write"})
    assert submit(cluster, cluster.api_key, {**body, "cache": "read"})["cache_hit"] is True
    # And "off" is never answered from the cache
    assert not finished(cluster, cluster.api_key, {**body, "cache": "off"}).cache_hit
    # And a bad mode is a 422 naming the field
    bad = httpx.post(
        f"{cluster.api_url}/v1/jobs",
        json={**body, "cache": "maybe"},
        headers={"Authorization": f"Bearer {cluster.api_key}"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cache"


def test_a_tenant_default_turns_the_cache_on_for_every_request(cluster: Cluster) -> None:
    # Given a new tenant whose operator set its default cache mode to "on"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    name = f"it-cache-on-{secrets.token_hex(3)}"
    made = httpx.post(f"{cluster.api_url}/admin/tenants", json={"name": name}, headers=admin)
    assert made.status_code == 201, made.text
    tenant = made.json()
    patched = httpx.patch(
        f"{cluster.api_url}/admin/tenants/{tenant['id']}",
        json={"response_cache": "on"},
        headers=admin,
    )
    assert patched.status_code == 200 and patched.json()["response_cache"] == "on"
    # When it sends the same non-deterministic request twice
    body = {**question(), "temperature": 0.9}
    first = finished(cluster, tenant["api_key"], body)
    second = submit(cluster, tenant["api_key"], body)
    # Then the second is answered from the cache, which temperature 0.9 alone would not allow
    assert not first.cache_hit and second["cache_hit"] is True
    assert second["output"] == first.output
    # And a bad mode is refused naming the field
    bad = httpx.patch(
        f"{cluster.api_url}/admin/tenants/{tenant['id']}",
        json={"response_cache": "always"},
        headers=admin,
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "response_cache"
