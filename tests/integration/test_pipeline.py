"""End to end: jobs go through the HTTP API, tier queues and real workers into the database."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

PROMPTS: dict[str, list[dict[str, Any]]] = {
    "fast": [
        {"prompt": "What is the capital of France?"},
        {"prompt": "Write a short thank-you note to a colleague."},
    ],
    "reasoning": [
        {"prompt": "Solve step by step: if 3x + 7 = 22, what is x? Explain why."},
        {"prompt": "Prove that the sum of two even numbers is even."},
    ],
    "vision": [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe this picture."},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    ],
                }
            ]
        },
    ],
    "code": [
        {"prompt": "Write a Python function that reverses a linked list."},
        {"prompt": "Fix this bug:\n```js\nfunction add(a, b) { return a - b; }\n```"},
    ],
}


def mixed_jobs(n: int) -> list[dict[str, Any]]:
    tiers = list(PROMPTS)
    jobs = []
    for i in range(n):
        tier = tiers[i % len(tiers)]
        template = PROMPTS[tier][(i // len(tiers)) % len(PROMPTS[tier])]
        job = dict(template, custom_id=f"job-{i}")
        if "prompt" in job:
            job["prompt"] = f"{job['prompt']} (request {i})"
        jobs.append(job)
    return jobs


def wait_final(client: httpx.Client, job_ids: list[str], timeout_s: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    pending = set(job_ids)
    views: dict[str, dict] = {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            view = client.get(f"/v1/jobs/{job_id}").json()
            if view["status"] in ("succeeded", "failed"):
                views[job_id] = view
                pending.discard(job_id)
        if pending:
            time.sleep(0.2)
    assert not pending, f"{len(pending)} jobs not final after {timeout_s}s"
    return [views[j] for j in job_ids]


def test_200_mixed_jobs_all_succeed_with_exact_ledger(cluster: Cluster) -> None:
    # Given a running cluster and 200 mixed jobs: 150 in one batch, 50 submitted singly
    jobs = mixed_jobs(200)
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
        # When they are submitted through the HTTP API
        batch = client.post("/v1/batches", json=jobs[:150])
        assert batch.status_code == 202, batch.text
        batch_id = batch.json()["id"]
        single_ids = []
        for job in jobs[150:]:
            response = client.post("/v1/jobs", json=job)
            assert response.status_code == 202, response.text
            single_ids.append(response.json()["id"])
        deadline = time.monotonic() + 120
        while client.get(f"/v1/batches/{batch_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "batch not completed in 120 s"
            time.sleep(0.3)
        lines = client.get(f"/v1/batches/{batch_id}/results").text.splitlines()
        results = [json.loads(line) for line in lines]
        singles = wait_final(client, single_ids)

    # Then every job succeeded, on every tier, with its output and a non-zero cost
    assert len(results) == 150
    assert [r["custom_id"] for r in results] == [f"job-{i}" for i in range(150)]
    everything = results + singles
    assert Counter(r["status"] for r in everything) == {"succeeded": 200}
    assert set(Counter(r["tier"] for r in everything)) == {"fast", "reasoning", "vision", "code"}
    assert all(r["cost_micro_usd"] > 0 for r in everything)

    # And the ledger has exactly one row per billed call, and each job's cost is their sum
    with session_scope(cluster.engine) as session:
        job_ids = [r["job_id"] for r in results] + [s["id"] for s in singles]
        billed = session.scalar(
            select(func.count())
            .select_from(Attempt)
            .where(Attempt.job_id.in_(job_ids), Attempt.outcome == "ok")
        )
        ledger_rows = session.scalars(select(LedgerEntry).where(LedgerEntry.job_id.in_(job_ids)))
        rows = list(ledger_rows)
        assert billed == len(rows) == 200
        assert len({r.attempt_id for r in rows}) == 200
        per_job: Counter[str] = Counter()
        for row in rows:
            per_job[row.job_id] += row.cost_micro_usd
        query = select(Job.id, Job.cost_micro_usd).where(Job.id.in_(job_ids))
        stored = {job_id: cost for job_id, cost in session.execute(query)}
        assert stored == dict(per_job)
