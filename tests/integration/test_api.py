"""The HTTP API refuses bad input with a 4xx naming the field, and isolates tenants."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.store import repo
from orchestrator.store.db import session_scope
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def client(cluster: Cluster) -> httpx.Client:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    return httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30)


def test_missing_or_wrong_key_is_401(cluster: Cluster) -> None:
    # Given no key, or an unknown one; When a job is posted; Then 401 in the error shape
    for headers in ({}, {"Authorization": "Bearer sy-not-a-key"}):
        response = httpx.post(f"{cluster.api_url}/v1/jobs", json={"prompt": "hi"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "tier": "gold"}, "tier"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0"),
        ({"prompt": "hi", "model": "no-such-model"}, "model"),
        ({"prompt": "hi", "colour": "blue"}, "colour"),
    ],
)
def test_bad_job_is_422_naming_the_field(client: httpx.Client, body: dict, field: str) -> None:
    # When an invalid job is posted; Then 422 and the error names the field
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["field"]


def test_bad_batch_line_is_422_naming_the_line(client: httpx.Client) -> None:
    # Given JSON Lines whose third line lacks a prompt
    body = b'{"prompt": "a"}\n{"prompt": "b"}\n{"max_tokens": 5}\n'
    # When it is posted; Then 422 names line 3, and nothing was queued
    response = client.post(
        "/v1/batches", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"].startswith("line 3")
    broken = client.post(
        "/v1/batches",
        content=b'{"prompt": "a"}\n{oops\n',
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert broken.status_code == 422 and broken.json()["error"]["field"] == "line 2"


def test_other_tenants_job_is_404(cluster: Cluster, client: httpx.Client) -> None:
    # Given a job of the main tenant and a second tenant with its own key
    job = client.post("/v1/jobs", json={"prompt": "What is 2 + 2?"}).json()
    with session_scope(cluster.engine) as session:
        other = repo.create_tenant(session, name="it-other")
        other_key = repo.create_api_key(session, tenant_id=other.id)
    # When the second tenant asks for it; Then it does not exist for them
    response = httpx.get(
        f"{cluster.api_url}/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {other_key}"}
    )
    assert response.status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert client.get("/v1/batches/bat_nope").status_code == 404


def test_readyz_checks_database_and_broker(cluster: Cluster) -> None:
    response = httpx.get(f"{cluster.api_url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
