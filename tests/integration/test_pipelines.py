"""Pipelines through the HTTP API and real tier workers: one job row per step, each on its tier."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from orchestrator.queues.app import make_celery
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
    "hKmMIQAAAABJRU5ErkJggg=="
)
FINAL = {"succeeded", "failed", "cancelled", "expired"}


def three_steps(note: str) -> dict[str, Any]:
    """A document job: read the image (vision), analyse it (reasoning), summarise it (fast)."""
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"An invoice scan ({note})."},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                ],
            }
        ],
        "steps": [
            {"name": "extract", "prompt": "Extract all text from this image: {input}"},
            {
                "name": "analyse",
                "tier": "reasoning",
                "prompt": "Analyse step by step what this document says:\n{steps.extract.output}",
            },
            {
                "name": "summary",
                "tier": "fast",
                "prompt": "Summarise in one line: {steps.analyse.output}",
                "max_tokens": 64,
            },
        ],
    }


def wait_view(client: httpx.Client, job_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        view: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if view["status"] in FINAL:
            return view
        assert time.monotonic() < deadline, f"job {job_id} still {view['status']}"
        time.sleep(0.2)


def test_three_step_pipeline_runs_each_step_on_its_own_tier(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
        # Given a three-step job (image -> vision, analysis -> reasoning, summary -> fast)
        submitted = client.post("/v1/jobs", json=three_steps("three tiers"))
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        # When it runs through the real tier workers
        view = wait_view(client, job_id)

    # Then it succeeded, and the API shows each step's tier, deployment and cost
    assert view["status"] == "succeeded", view
    steps = view["steps"]
    assert [s["name"] for s in steps] == ["extract", "analyse", "summary"]
    assert [s["tier"] for s in steps] == ["vision", "reasoning", "fast"]
    assert [s["status"] for s in steps] == ["succeeded"] * 3
    assert view["current_step"] == 2
    assert all(s["deployment"] and s["cost_micro_usd"] > 0 for s in steps)
    with session_scope(cluster.engine) as session:
        children = {
            j.step_index: j for j in session.scalars(select(Job).where(Job.parent_job_id == job_id))
        }
        ids = [children[i].id for i in range(3)]
        ledger = list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id.in_(ids))))
        attempts = Counter(
            session.scalars(select(Attempt.job_id).where(Attempt.job_id.in_(ids))).all()
        )
        # each step ran on a deployment of its own tier, once, as its own job
        assert [children[i].tier for i in range(3)] == ["vision", "reasoning", "fast"]
        assert attempts == {i: 1 for i in ids}
        # and each step's prompt was filled from the step before it
        assert children[0].request["messages"][0]["content"][1]["type"] == "image_url"
        assert children[0].output and children[0].output in children[1].request["prompt"]
        assert children[1].output and children[1].output in children[2].request["prompt"]
        assert view["output"] == children[2].output
        # And the job's cost equals the sum of its steps' ledger rows
        assert len(ledger) == 3
        assert view["cost_micro_usd"] == sum(r.cost_micro_usd for r in ledger)
        assert {r.tier for r in ledger} == {"vision", "reasoning", "fast"}
        # And no step is on the parent's batch, and the parent itself never ran a call
        assert session.scalar(select(Attempt.id).where(Attempt.job_id == job_id)) is None


def test_a_template_naming_a_later_step_is_refused_with_the_field(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    body = {
        "prompt": "x",
        "steps": [{"prompt": "{steps.later.output}"}, {"name": "later", "prompt": "y"}],
    }
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
        response = client.post("/v1/jobs", json=body)
        unknown = client.post(
            "/v1/jobs", json={"prompt": "x", "steps": [{"prompt": "a", "model": "nope"}]}
        )
    assert response.status_code == 422
    assert "steps" in response.json()["error"]["field"]
    assert "later" in response.json()["error"]["message"]
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "steps[0].model"


@contextmanager
def simulator_config(cluster: Cluster, config: dict[str, Any]) -> Iterator[None]:
    """Run the block with the cluster's simulator set to ``config``; restore it afterwards."""
    base = f"http://127.0.0.1:{cluster.settings.simulator_port}/_sim/config"
    before = httpx.get(base, timeout=10).json()
    assert httpx.put(base, json=config, timeout=10).status_code == 200
    try:
        yield
    finally:
        httpx.put(base, json=before, timeout=10)


def test_cancelling_a_pipeline_cancels_its_running_step_and_starts_no_other(
    cluster: Cluster,
) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    # Given a pipeline whose first step's model takes 3 s an answer
    slow = {"models": {"gpt-4o-mini": {"latency_p50_ms": 3000}}}
    with (
        simulator_config(cluster, slow),
        httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client,
    ):
        job_id = client.post("/v1/jobs", json=three_steps("cancelled")).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["steps"][0]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # When it is cancelled while step 0 runs
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        time.sleep(4)  # the call in flight ends meanwhile
        view = client.get(f"/v1/jobs/{job_id}").json()
    # Then the job and its step are cancelled, and no later step was created
    assert view["status"] == "cancelled"
    assert [s["status"] for s in view["steps"]] == ["cancelled", None, None]


def run_batch(cluster: Cluster, lines: list[dict[str, Any]], timeout_s: float = 240) -> list[dict]:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=60) as client:
        batch = client.post("/v1/batches", json=lines)
        assert batch.status_code == 202, batch.text
        batch_id = batch.json()["id"]
        deadline = time.monotonic() + timeout_s
        while client.get(f"/v1/batches/{batch_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, f"batch not completed in {timeout_s} s"
            time.sleep(0.5)
        text = client.get(f"/v1/batches/{batch_id}/results").text
    return [json.loads(line) for line in text.splitlines()]


def test_flower_sees_each_step_as_a_task_linked_to_the_one_before(cluster: Cluster) -> None:
    # Given a listener on the workers' task events (what Flower reads), switched on in
    # every worker as Flower does (they are off by default)
    app = make_celery(cluster.settings)
    deadline = time.monotonic() + 30  # until every tier's worker answers, as Flower retries
    while len(app.control.broadcast("enable_events", reply=True, timeout=1.0)) < 4:
        assert time.monotonic() < deadline, "the workers did not answer enable_events"
    received: list[dict[str, Any]] = []
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"task-received": received.append}, app=app)
        listener = threading.Thread(
            target=lambda: receiver.capture(limit=None, timeout=None, wakeup=True), daemon=True
        )
        listener.start()
        time.sleep(1.0)
        # When a three-step job runs
        headers = {"Authorization": f"Bearer {cluster.api_key}"}
        with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
            job_id = client.post("/v1/jobs", json=three_steps("flower")).json()["id"]
            view = wait_view(client, job_id)
        time.sleep(1.0)
        receiver.should_stop = True
        listener.join(timeout=10)
    # Then each step is one task whose only argument is the step's job id, received by the
    # worker of its tier, and linked to the task of the step before it (parent) and to the
    # first step's task (root)
    step_ids = [s["job_id"] for s in view["steps"]]
    by_job = {e["args"].strip("[]'\""): e for e in received if e.get("args")}
    tasks = [by_job[j] for j in step_ids]
    assert [t["hostname"].split(".")[0] for t in tasks] == ["vision", "reasoning", "fast"]
    assert tasks[1]["parent_id"] == tasks[0]["uuid"]
    assert tasks[2]["parent_id"] == tasks[1]["uuid"]
    assert tasks[1]["root_id"] == tasks[2]["root_id"] == tasks[0]["uuid"]
    assert all("invoice" not in t["args"] for t in tasks)


def test_a_failed_step_fails_the_job_and_a_redrive_resumes_from_that_step(
    cluster: Cluster,
) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    broken = {"error_rates": {"400": 1.0}}
    reasoning_down = {"models": {m: broken for m in ("o4-mini", "o3", "claude-sonnet-4")}}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as client:
        # Given every reasoning model refuses requests (HTTP 400)
        with simulator_config(cluster, reasoning_down):
            job_id = client.post("/v1/jobs", json=three_steps("redrive")).json()["id"]
            failed = wait_view(client, job_id)
        # Then the job fails at step 1, naming it, with step 0's cost already counted
        assert failed["status"] == "failed"
        assert failed["error"].startswith("step 1 (analyse) failed")
        assert [s["status"] for s in failed["steps"]] == ["succeeded", "failed", None]
        assert failed["cost_micro_usd"] == failed["steps"][0]["cost_micro_usd"] > 0
        # When the providers are back and the job is re-driven
        assert client.post(f"/v1/jobs/{job_id}/redrive").status_code == 200
        view = wait_view(client, job_id)
    # Then it resumes at step 1 (step 0 is not run again) and succeeds
    assert view["status"] == "succeeded", view
    assert [s["status"] for s in view["steps"]] == ["succeeded"] * 3
    assert view["steps"][0] == failed["steps"][0]
    assert view["cost_micro_usd"] == sum(s["cost_micro_usd"] for s in view["steps"])


def test_a_batch_of_pipelines_runs_the_same_steps_for_every_line(cluster: Cluster) -> None:
    # Given a batch whose lines each carry the same two steps
    steps = [
        {"name": "draft", "tier": "fast", "prompt": "Draft a reply to: {input}"},
        {"name": "polish", "tier": "fast", "prompt": "Polish: {steps.draft.output}"},
    ]
    lines = [{"prompt": f"Where is order {i}?", "steps": steps} for i in range(20)]
    # When it runs
    results = run_batch(cluster, lines)
    # Then every line succeeded through both steps, and its cost is its steps' ledger rows
    assert Counter(r["status"] for r in results) == {"succeeded": 20}
    with session_scope(cluster.engine) as session:
        for r in results:
            steps_of = list(session.scalars(select(Job).where(Job.parent_job_id == r["job_id"])))
            assert sorted(s.step_index for s in steps_of) == [0, 1]
            assert all(s.batch_id is None for s in steps_of)
            ledger = session.scalar(
                select(func.sum(LedgerEntry.cost_micro_usd)).where(
                    LedgerEntry.job_id.in_([s.id for s in steps_of])
                )
            )
            assert r["cost_micro_usd"] == ledger
            first = next(s for s in steps_of if s.step_index == 0)
            assert first.request["prompt"] == f"Draft a reply to: Where is order {r['index']}?"
