"""Webhooks, tenant rate limits, the admin key, Prometheus metrics and Flower, on a cluster."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from orchestrator.cluster.supervisor import Supervisor
from orchestrator.wire.webhooks import verify_signature
from tests.conftest import free_port
from tests.integration.conftest import ADMIN_KEY, Cluster

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    """A service's webhook endpoint: the first try of each delivery fails, the next succeeds."""

    calls: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append((dict(self.headers.items()), body))
        delivery = self.headers["X-Switchyard-Delivery"]
        first = sum(1 for h, _ in Receiver.calls if h["X-Switchyard-Delivery"] == delivery) == 1
        self.send_response(500 if first else 204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def accepted(event: str, timeout_s: float = 30.0) -> tuple[dict[str, str], bytes]:
    """The delivery of ``event`` that the receiver accepted (its second try)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tries = [c for c in Receiver.calls if c[0]["X-Switchyard-Event"] == event]
        if len(tries) >= 2:
            return tries[1]
        time.sleep(0.2)
    raise AssertionError(f"no second try of {event}: {Receiver.calls}")


def test_signed_webhooks_for_a_job_and_a_batch_are_retried(cluster: Cluster, receiver: str) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as api:
        secret = api.get("/v1/webhooks/secret").json()["secret"]
        # Given a job and a batch that carry a callback URL
        job = api.post("/v1/jobs", json={"prompt": "Hello?", "callback_url": receiver}).json()
        batch = api.post(
            "/v1/batches",
            params={"callback_url": receiver},
            json=[{"prompt": "a"}, {"prompt": "b"}],
        ).json()
        assert batch["callback_url"] == receiver
    # When they end; Then each is notified, signed with the tenant's secret, after one retry
    for event, key, object_id in (
        ("job.finished", "job", job["id"]),
        ("batch.finished", "batch", batch["id"]),
    ):
        got, body = accepted(event)
        assert verify_signature(secret, body, got["X-Switchyard-Signature"])
        assert not verify_signature("whsec_wrong", body, got["X-Switchyard-Signature"])
        payload = json.loads(body)
        assert payload["type"] == event and payload[key]["id"] == object_id
        tries = [
            c
            for c in Receiver.calls
            if c[0]["X-Switchyard-Delivery"] == got["X-Switchyard-Delivery"]
        ]
        assert len(tries) == 2
    assert json.loads(accepted("batch.finished")[1])["batch"]["status"] == "completed"


def _tenant_allowed_3_a_minute(cluster: Cluster, name: str) -> dict[str, str]:
    """A new tenant limited to 3 requests a minute; the headers that carry its key."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = httpx.post(
        f"{cluster.api_url}/admin/tenants", headers=admin, json={"name": name, "rate_limit_rpm": 3}
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['api_key']}"}


def test_tenant_rate_limit_answers_429(cluster: Cluster) -> None:
    # Given a tenant allowed 3 requests a minute, and another with the default
    slow = _tenant_allowed_3_a_minute(cluster, "slow-tenant")
    # When it makes 4 requests at once
    answers = [httpx.get(f"{cluster.api_url}/v1/batches", headers=slow) for _ in range(4)]
    # Then the 4th is a 429 with Retry-After, in the error shape; other tenants are not slowed
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limit_exceeded"
    main = {"Authorization": f"Bearer {cluster.api_key}"}
    assert httpx.get(f"{cluster.api_url}/v1/batches", headers=main).status_code == 200


def test_chat_completions_and_their_cache_hits_count_against_the_rate_limit(
    cluster: Cluster,
) -> None:
    # Given a tenant allowed 3 requests a minute
    slow = _tenant_allowed_3_a_minute(cluster, "slow-chat-tenant")
    body = {
        "model": "tier:fast",
        "temperature": 0,
        "messages": [{"role": "user", "content": "Name a colour. (rate-limit test)"}],
    }
    url = f"{cluster.api_url}/v1/chat/completions"
    # When it asks the same deterministic question 4 times in a row
    answers = [httpx.post(url, headers=slow, json=body, timeout=60) for _ in range(4)]
    # Then the first is answered by a worker, the next two from the cache (the rate
    # limit and the cache are read in one Redis round trip), and the 4th is a 429
    assert [a.status_code for a in answers] == [200, 200, 200, 429], answers[-1].text
    assert [a.headers.get("x-switchyard-cache") for a in answers[:3]] == [None, "hit", "hit"]
    assert answers[-1].json()["error"]["code"] == "rate_limit_exceeded"
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_admin_api_needs_the_admin_key(cluster: Cluster) -> None:
    tenant_key = {"Authorization": f"Bearer {cluster.api_key}"}
    assert httpx.get(f"{cluster.api_url}/admin/tenants", headers=tenant_key).status_code == 401
    assert httpx.get(f"{cluster.api_url}/admin/tenants").status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.get(f"{cluster.api_url}/admin/tenants", headers=admin).status_code == 200


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return response.text


def test_prometheus_metrics_on_the_api_and_a_worker(cluster: Cluster) -> None:
    # Given some fast-tier work done
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    job = httpx.post(f"{cluster.api_url}/v1/jobs", headers=headers, json={"prompt": "Hi there"})
    deadline = time.monotonic() + 30
    while (
        httpx.get(f"{cluster.api_url}/v1/jobs/{job.json()['id']}", headers=headers).json()["status"]
        != "succeeded"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # When the API and the fast worker are scraped
    api = scrape(f"{cluster.api_url}/metrics")
    worker = scrape(f"http://127.0.0.1:{cluster.worker_metrics_port}/metrics")
    # Then the API shows requests, admissions, queue depth and waiting jobs per tier
    for name in (
        "switchyard_http_requests_total",
        'switchyard_jobs_submitted_total{priority="interactive",tier="fast"}',
        'switchyard_queue_depth{priority="0",tier="fast"}',
    ):
        assert name in api, name
    assert 'route="/v1/jobs/{job_id}"' in api  # by route template, not by id
    # And the worker shows jobs, provider calls, latency, tokens, cost, guards and breakers
    for name in (
        'switchyard_jobs_ended_total{state="succeeded",tier="fast"}',
        "switchyard_provider_requests_total{",
        "switchyard_provider_latency_seconds_bucket{",
        'switchyard_tokens_total{kind="output",provider="simulator",tier="fast"}',
        'switchyard_cost_micro_usd_total{provider="simulator",tier="fast"}',
        "switchyard_guard_wait_seconds_bucket{",
        'switchyard_breaker_state{deployment="sim-gpt-4o-mini"}',
    ):
        assert name in worker, name


def test_flower_sees_workers_and_only_job_ids(cluster: Cluster) -> None:
    # Given Flower started by the CLI on the cluster's broker, behind basic auth
    port = free_port()
    env = {**cluster.env, "FLOWER_BASIC_AUTH": "ops:flower-test-pw"}
    auth = ("ops", "flower-test-pw")
    supervisor = Supervisor(env=env, log_dir=cluster.settings.state_path / "logs")
    try:
        supervisor.spawn("flower", "flower", "--port", str(port))
        supervisor.wait_http(f"http://127.0.0.1:{port}/healthcheck")
        # When jobs run (one a second, until Flower, once subscribed to events, shows one)
        headers = {"Authorization": f"Bearer {cluster.api_key}"}
        deadline = time.monotonic() + 30
        tasks: dict[str, Any] = {}
        sent: list[str] = []
        # Then Flower lists the task with the job id as its only argument, never the prompt
        while not any(job_id in str(t.get("args")) for t in tasks.values() for job_id in sent):
            assert time.monotonic() < deadline, tasks
            job = httpx.post(
                f"{cluster.api_url}/v1/jobs", headers=headers, json={"prompt": "secret prompt text"}
            ).json()
            sent.append(job["id"])
            time.sleep(1.0)
            tasks = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=auth, timeout=10).json()
        shown = [t for t in tasks.values() if any(j in str(t.get("args")) for j in sent)]
        assert all(t["args"] in {f"['{j}']" for j in sent} for t in shown), shown
        assert "secret prompt text" not in json.dumps(tasks)
        url = f"http://127.0.0.1:{port}/api/workers?refresh=1"
        workers = httpx.get(url, auth=auth, timeout=30).json()
        assert httpx.get(f"http://127.0.0.1:{port}/api/tasks").status_code == 401
        assert {name.split(".")[0] for name in workers} >= {"fast", "reasoning", "vision", "code"}
    finally:
        supervisor.stop()
