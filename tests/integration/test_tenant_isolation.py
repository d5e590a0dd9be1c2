"""Every endpoint that takes an id answers 404 to another tenant, and changes nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ADMIN_KEY, Cluster

pytestmark = pytest.mark.integration

# Global (not tenant-owned) ids: the model list and the admin API, which has its own key.
NOT_TENANT_OWNED = ("/v1/models/", "/admin/")


def call(api: str, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, api + path, headers=headers, timeout=30, **kwargs)


def owned_objects(cluster: Cluster) -> dict[str, str]:
    """A finished job, an uploaded file and a finished batch with output and error files."""
    api, key = cluster.api_url, cluster.api_key
    good = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    lines = [
        json.dumps(
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": good}
        ),
        '{"custom_id": "b", "broken',
    ]
    files = {"file": ("in.jsonl", "\n".join(lines).encode())}
    file_id = call(api, key, "POST", "/v1/files", files=files, data={"purpose": "batch"}).json()[
        "id"
    ]
    create = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    batch_id = call(api, key, "POST", "/v1/batches", json=create).json()["id"]
    session_id = f"iso-{time.monotonic_ns()}"  # the job's session (CONTEXT.md)
    ask = {"prompt": "What is 2 + 2?", "session_id": session_id}
    job_id = call(api, key, "POST", "/v1/jobs", json=ask).json()["id"]
    deadline = time.monotonic() + 60
    while call(api, key, "GET", f"/v1/batches/{batch_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    while call(api, key, "GET", f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return {"job_id": job_id, "batch_id": batch_id, "file_id": file_id, "session_id": session_id}


def second_tenant(cluster: Cluster) -> str:
    """A new tenant made through the admin API; returns its key."""
    response = httpx.post(
        f"{cluster.api_url}/admin/tenants",
        json={"name": "isolation-b"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


def probes(ids: dict[str, str]) -> list[tuple[str, str, str]]:
    """(method, route template, concrete path) for every id-taking tenant endpoint."""
    job, batch, file = ids["job_id"], ids["batch_id"], ids["file_id"]
    return [
        ("GET", "/v1/jobs/{job_id}", f"/v1/jobs/{job}"),
        ("POST", "/v1/jobs/{job_id}/cancel", f"/v1/jobs/{job}/cancel"),
        ("POST", "/v1/jobs/{job_id}/redrive", f"/v1/jobs/{job}/redrive"),
        ("GET", "/v1/batches/{batch_id}", f"/v1/batches/{batch}"),
        ("GET", "/v1/batches/{batch_id}/results", f"/v1/batches/{batch}/results"),
        ("POST", "/v1/batches/{batch_id}/cancel", f"/v1/batches/{batch}/cancel"),
        ("POST", "/v1/batches/{batch_id}/redrive", f"/v1/batches/{batch}/redrive"),
        ("GET", "/v1/files/{file_id}", f"/v1/files/{file}"),
        ("GET", "/v1/files/{file_id}/content", f"/v1/files/{file}/content"),
        ("GET", "/v1/files/{file_id}", f"/v1/files/file_out_{batch}"),
        ("GET", "/v1/files/{file_id}/content", f"/v1/files/file_err_{batch}/content"),
        ("DELETE", "/v1/files/{file_id}", f"/v1/files/{file}"),
        ("GET", "/v1/sessions/{session_id}", f"/v1/sessions/{ids['session_id']}"),
        ("DELETE", "/v1/sessions/{session_id}", f"/v1/sessions/{ids['session_id']}"),
        ("POST", "/v1/jobs/{job_id}/feedback", f"/v1/jobs/{job}/feedback"),
        ("GET", "/v1/experiments/{ref}", f"/v1/experiments/{ids['experiment']}"),
        ("GET", "/v1/experiments/{ref}", f"/v1/experiments/{ids['experiment_id']}"),
        ("GET", "/v1/experiments/{ref}/report", f"/v1/experiments/{ids['experiment']}/report"),
        ("POST", "/v1/experiments/{ref}/stop", f"/v1/experiments/{ids['experiment']}/stop"),
    ]


def experiment(cluster: Cluster) -> dict[str, str]:
    """A running experiment of tenant A's, on a tier no other test uses at that moment."""
    spec = {
        "name": f"iso-{time.monotonic_ns()}",
        "unit": "job",
        "tiers": ["code"],
        "arms": [{"name": "low", "quality": 0.1}, {"name": "high", "quality": 0.9}],
    }
    response = call(cluster.api_url, cluster.api_key, "POST", "/v1/experiments", json=spec)
    assert response.status_code == 201, response.text
    return {"experiment": spec["name"], "experiment_id": str(response.json()["id"])}


def test_every_id_endpoint_is_404_for_another_tenant(cluster: Cluster) -> None:
    # Given tenant A's job, file and batch, and a second tenant B
    api, key_a = cluster.api_url, cluster.api_key
    ids = owned_objects(cluster) | experiment(cluster)
    key_b = second_tenant(cluster)
    try:
        check_isolation(cluster, ids, key_b)
    finally:  # A's experiment must not go on enrolling other tests' jobs
        call(api, key_a, "POST", f"/v1/experiments/{ids['experiment']}/stop")


def check_isolation(cluster: Cluster, ids: dict[str, str], key_b: str) -> None:
    api, key_a = cluster.api_url, cluster.api_key
    before = {
        path: call(api, key_a, "GET", path).text
        for path in (
            f"/v1/jobs/{ids['job_id']}",
            f"/v1/batches/{ids['batch_id']}",
            f"/v1/sessions/{ids['session_id']}",
            f"/v1/experiments/{ids['experiment']}",
        )
    }
    # When B calls every endpoint that takes an id, with A's ids
    checked = set()
    for method, template, path in probes(ids):
        body = {"json": {"score": 1.0}} if path.endswith("/feedback") else {}
        response = call(api, key_b, method, path, **body)
        # Then each is a 404 in the error shape, as if the object did not exist
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["type"] == "not_found"
        checked.add((method, template))
    # And B cannot start a batch from A's file, nor see A's objects in its lists
    create = {"input_file_id": ids["file_id"], "endpoint": "/v1/chat/completions"}
    assert call(api, key_b, "POST", "/v1/batches", json=create).status_code == 404
    assert ids["batch_id"] not in call(api, key_b, "GET", "/v1/batches").text
    assert ids["file_id"] not in call(api, key_b, "GET", "/v1/files").text
    # And nothing of A's changed: its job and batch read the same, its file still exists
    for path, text in before.items():
        assert call(api, key_a, "GET", path).text == text
    assert call(api, key_a, "GET", f"/v1/files/{ids['file_id']}").status_code == 200
    # And the probes covered every tenant-owned route that takes an id
    spec = httpx.get(f"{api}/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if "{" in path and not path.startswith(NOT_TENANT_OWNED)
    }
    assert routes == checked
