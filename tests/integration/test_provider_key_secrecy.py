"""A planted provider key is sent to the provider and found nowhere else.

A cluster of its own (API, one worker on every tier, verbose logs) runs on a
catalog whose every deployment uses one key, read from the environment, and
points at a fake provider (the HTTP edge) that records the key it receives and,
for some prompts, answers 401 quoting the key back as real providers do. After a
batch and a chat completion, the test searches the logs, every Redis key of the
cluster and a dump of every database table for the key.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from sqlalchemy import MetaData, select

from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.store.db import get_engine
from tests.conftest import free_port
from tests.integration.conftest import settings_env

pytestmark = pytest.mark.integration

PLANTED = "sk-planted-" + secrets.token_hex(16)


class FakeProvider(BaseHTTPRequestHandler):
    """OpenAI chat completions; a prompt with 'fail-auth' gets a 401 that echoes the key."""

    seen_keys: list[str] = []  # noqa: RUF012 - shared with the test on purpose

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        FakeProvider.seen_keys.append(key)
        if "fail-auth" in json.dumps(body["messages"]):
            error = {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}
            self._send(401, {"error": {**error, "type": "invalid_request_error"}})
            return
        answer = {"role": "assistant", "content": "fine, thanks"}
        self._send(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": answer, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
            },
        )

    def _send(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_: Any) -> None:
        pass


def catalog(base_url: str) -> dict[str, Any]:
    common = {
        "provider": "fakeai",
        "api": "openai",
        "base_url": base_url,
        "api_key_ref": "planted",
        "context_window": 128000,
        "max_output_tokens": 4096,
        "input_usd_per_mtok": 1.0,
        "output_usd_per_mtok": 2.0,
    }
    return {
        "deployments": [
            {
                **common,
                "name": "fake-text",
                "model": "fake-text",
                "tiers": ["fast", "reasoning", "code"],
            },
            {
                **common,
                "name": "fake-vision",
                "model": "fake-vision",
                "tiers": ["vision"],
                "vision": True,
            },
        ]
    }


@pytest.fixture(scope="module")
def planted(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Settings]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = Path(tmp_path_factory.mktemp("planted"))
    (root / "catalog.yaml").write_text(
        yaml.safe_dump(catalog(f"http://127.0.0.1:{server.server_port}/v1"))
    )
    settings = Settings(
        state_dir=root / "state",
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"sykey-{secrets.token_hex(4)}:",
        catalog_path=root / "catalog.yaml",
        api_port=free_port(),
        worker_concurrency=4,
        tenant_rate_limit_rpm=0,
    )
    env = {
        **settings_env(settings),
        "SWITCHYARD_CATALOG_PATH": str(root / "catalog.yaml"),
        "SWITCHYARD_PROVIDER_KEYS": json.dumps({"planted": PLANTED}),
    }
    api_key = ensure_tenant_key(
        get_engine(database_url), state_dir=settings.state_path, tenant="it-planted"
    )
    supervisor = Supervisor(env=env, log_dir=settings.state_path / "logs")
    try:
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        tiers = [arg for t in ("fast", "reasoning", "vision", "code") for arg in ("--tier", t)]
        supervisor.spawn("worker", "worker", *tiers, "--loglevel", "INFO")
        api_url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"{api_url}/readyz")
        yield api_url, api_key, settings
    finally:
        supervisor.stop()
        server.shutdown()


def run_work(api_url: str, api_key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"}
    jobs = [{"prompt": f"How are you? ({i})", "custom_id": f"ok-{i}"} for i in range(10)]
    jobs += [{"prompt": f"fail-auth please ({i})", "custom_id": f"bad-{i}"} for i in range(2)]
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as client:
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
        )
        assert chat.status_code == 200, chat.text
        batch = client.post("/v1/batches", json=jobs).json()
        deadline = time.monotonic() + 90
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            assert time.monotonic() < deadline, batch
            time.sleep(0.3)
            batch = client.get(f"/v1/batches/{batch['id']}").json()
        results = [
            json.loads(x)
            for x in client.get(f"/v1/batches/{batch['id']}/results").text.splitlines()
        ]
    return {"batch": batch, "results": results}


def redis_dump(url: str, prefix: str) -> str:
    client = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key).decode()
        if kind == "string":
            value: Any = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1)
        else:
            value = client.dump(key)
        parts.append(f"{key!r} {value!r}")
    # kombu keeps unacknowledged messages under unprefixed names too
    for key in client.scan_iter(match="unacked*"):
        parts.append(repr(client.hgetall(key)))
    client.close()
    return "\n".join(parts)


def database_dump(url: str) -> str:
    engine = get_engine(url)
    metadata = MetaData()
    metadata.reflect(bind=engine)
    rows: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows.extend(repr(tuple(row)) for row in conn.execute(select(table)))
    return "\n".join(rows)


def test_planted_provider_key_is_nowhere_but_at_the_provider(
    planted: tuple[str, str, Settings], database_url: str, redis_url: str
) -> None:
    api_url, api_key, settings = planted
    # Given a cluster whose provider key is planted in its environment
    # When a chat completion and a batch run, two of its jobs failing with a 401 that quotes the key
    outcome = run_work(api_url, api_key)
    statuses = {r["custom_id"]: r["status"] for r in outcome["results"]}
    assert [statuses[f"ok-{i}"] for i in range(10)] == ["succeeded"] * 10
    assert statuses["bad-0"] == statuses["bad-1"] == "failed"
    # Then the provider received the key (so it was really used)
    assert PLANTED in FakeProvider.seen_keys
    # And the key is in no log, no Redis key of the cluster, and no database row
    logs = "\n".join(
        p.read_text(errors="replace") for p in (settings.state_path / "logs").glob("*")
    )
    assert "execute_job" in logs or "Task" in logs  # the worker logged its tasks
    assert PLANTED not in logs
    assert PLANTED not in redis_dump(redis_url, settings.redis_key_prefix)
    dump = database_dump(database_url)
    assert "fail-auth" in dump and PLANTED not in dump
    assert "Incorrect API key provided" in dump  # the error was kept, with the key scrubbed
