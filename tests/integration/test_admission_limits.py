"""Admission limits, in one API process on the real database and Redis (no workers needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.core.config import Settings
from orchestrator.store.db import get_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def api(database_url: str, redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        state_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=key_prefix,
        max_request_bytes=4000,
        max_file_bytes=8000,
        max_batch_jobs=3,
        tenant_rate_limit_rpm=0,
        webhook_allow_private=False,
    )
    key = ensure_tenant_key(get_engine(database_url), state_dir=tmp_path, tenant="it-limits")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_bodies_over_the_limit_are_413(api: TestClient) -> None:
    # A declared body over the limit is refused before it is read
    big = {"prompt": "x" * 5000}
    refused = api.post("/v1/jobs", json=big)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "request_too_large"
    # A streamed body (no Content-Length) is cut off when it passes the limit
    chunks = (b'{"prompt": "' + b"y" * 1000 for _ in range(6))
    streamed = api.post("/v1/jobs", content=chunks, headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    # Uploads have their own, larger limit
    ok = api.post(
        "/v1/files", files={"file": ("a.jsonl", b"{}\n" * 1500)}, data={"purpose": "batch"}
    )
    assert ok.status_code == 200, ok.text
    too_big = api.post(
        "/v1/files", files={"file": ("a.jsonl", b"{}\n" * 3000)}, data={"purpose": "batch"}
    )
    assert too_big.status_code == 413


def test_batches_over_the_job_limit_are_422(api: TestClient) -> None:
    # Native: four jobs where three are allowed
    lines = b"\n".join(json.dumps({"prompt": f"p{i}"}).encode() for i in range(4))
    native = api.post(
        "/v1/batches", content=lines, headers={"Content-Type": "application/x-ndjson"}
    )
    assert native.status_code == 422 and "at most 3" in native.json()["error"]["message"]
    # OpenAI: a four-line input file
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    rows = [
        {"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions", "body": body}
        for i in range(4)
    ]
    content = "\n".join(json.dumps(r) for r in rows).encode()
    file_id = api.post(
        "/v1/files", files={"file": ("in.jsonl", content)}, data={"purpose": "batch"}
    ).json()["id"]
    create = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    assert api.post("/v1/batches", json=create).status_code == 422
    # An endpoint other than chat completions is refused, naming the field
    other = api.post("/v1/batches", json={**create, "endpoint": "/v1/embeddings"})
    assert other.status_code == 422 and other.json()["error"]["field"] == "endpoint"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_private_or_odd_callback_urls_are_refused(api: TestClient, url: str) -> None:
    job = api.post("/v1/jobs", json={"prompt": "hi", "callback_url": url})
    assert job.status_code == 422 and job.json()["error"]["field"] == "callback_url", job.text
    batch = api.post("/v1/batches", params={"callback_url": url}, json=[{"prompt": "hi"}])
    assert batch.status_code == 422
