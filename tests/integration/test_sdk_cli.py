"""The Python SDK (sync and async) and the client and admin commands, against a running cluster."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.client.sdk import AsyncSwitchyard, Switchyard
from orchestrator.core.config import get_settings
from orchestrator.core.errors import NotFound, Unauthorized, ValidationFailed
from orchestrator.core.schemas import JobRequest
from orchestrator.store import tenants
from orchestrator.store.db import get_engine, session_scope
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


def test_sync_sdk_job_and_batch(cluster: Cluster) -> None:
    with Switchyard(cluster.api_url, cluster.api_key) as sy:
        # Given one job submitted through the SDK; When it is waited for; Then it succeeded
        job = sy.wait_job(sy.submit_job(prompt="What is 2 + 2?").id, timeout_s=60, poll_s=0.1)
        assert job.status == "succeeded" and job.output and job.cost_micro_usd > 0
        # Given a batch from a generator of models and dicts
        jobs = (
            JobRequest(prompt=f"Say hi #{i}", custom_id=f"sdk-{i}")
            if i % 2
            else {"prompt": f"Say hi #{i}", "custom_id": f"sdk-{i}"}
            for i in range(30)
        )
        batch = sy.submit_batch(jobs)
        seen: list[int] = []
        done = sy.wait_batch(
            batch.id, timeout_s=90, poll_s=0.2, on_progress=lambda b: seen.append(b.counts.total)
        )
        # Then it completed, progress was reported, and results come back in order
        assert done.status == "completed" and seen and seen[-1] == 30
        results = list(sy.iter_results(batch.id))
        assert [r.custom_id for r in results] == [f"sdk-{i}" for i in range(30)]
        assert all(r.status == "succeeded" and r.output for r in results)
        assert batch.id in {b.id for b in sy.list_batches(limit=100).data}
        # And errors come back as the orchestrator's error classes
        with pytest.raises(NotFound):
            sy.get_job("job_nope")
        with pytest.raises(ValidationFailed) as bad:
            sy.submit_batch([{"prompt": "ok"}, {"max_tokens": 3}])
        assert bad.value.field.startswith("[1]")


def test_async_sdk(cluster: Cluster) -> None:
    async def scenario() -> tuple[str, list[str]]:
        async with AsyncSwitchyard(cluster.api_url, cluster.api_key) as sy:
            job = await sy.submit_job({"prompt": "Name a colour."})
            final = await sy.wait_job(job.id, timeout_s=60, poll_s=0.1)
            batch = await sy.submit_batch(
                {"prompt": f"n{i}", "custom_id": str(i)} for i in range(5)
            )
            await sy.wait_batch(batch.id, timeout_s=60, poll_s=0.2)
            ids = [r.custom_id or "" async for r in sy.iter_results(batch.id)]
            return final.status, ids

    status, ids = asyncio.run(scenario())
    assert status == "succeeded" and ids == ["0", "1", "2", "3", "4"]
    with pytest.raises(Unauthorized):
        asyncio.run(AsyncSwitchyard(cluster.api_url, "sy-wrong").get_job("job_x"))


def cli(cluster: Cluster, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """``switchyard ARGS`` as its own process, configured like the cluster."""
    env = {
        **os.environ,
        **cluster.env,
        "SWITCHYARD_API_URL": cluster.api_url,
        "SWITCHYARD_API_KEY": key or cluster.api_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def run(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``switchyard ARGS`` in this process (fast), with the cluster's settings."""
    for name, value in {
        **cluster.env,
        "SWITCHYARD_API_URL": cluster.api_url,
        "SWITCHYARD_API_KEY": cluster.api_key,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_cli_submit_wait_out_and_read(
    cluster: Cluster, tmp_path: Path, run: Callable[..., Result]
) -> None:
    # Given a JSONL file mixing native lines and OpenAI batch lines
    lines = [
        json.dumps({"prompt": f"Capital of country {i}?", "custom_id": f"cli-{i}"})
        for i in range(8)
    ]
    body = {"model": "auto", "messages": [{"role": "user", "content": "Write a haiku."}]}
    lines.append(
        json.dumps(
            {
                "custom_id": "cli-openai",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
        )
    )
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    # When it is submitted with --wait --out
    done = cli(cluster, "submit", str(source), "--wait", "--out", str(out))
    # Then the batch id is printed, and every result is in the output file, in order
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip().splitlines()[-1]
    results = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [f"cli-{i}" for i in range(8)] + ["cli-openai"]
    assert all(r["status"] == "succeeded" for r in results)
    # And the read commands show it
    assert json.loads(run("batches", "get", batch_id).stdout)["status"] == "completed"
    listed = run("batches", "list", "--limit", "100", "--json").stdout.splitlines()
    assert batch_id in {json.loads(line)["id"] for line in listed}
    assert batch_id in run("batches", "list").stdout  # the table
    assert len(run("batches", "results", batch_id).stdout.splitlines()) == 9
    job = run("jobs", "get", results[0]["job_id"])
    assert json.loads(job.stdout)["id"] == results[0]["job_id"]
    assert run("batches", "cancel", batch_id).exit_code != 0  # finished: 409


def test_cli_tenants_and_keys(cluster: Cluster, run: Callable[..., Result]) -> None:
    # When a tenant is created; Then its key (alone on stdout) works against the API
    made = cli(cluster, "tenants", "create", "cli-tenant", "--rate-limit-rpm", "600")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{cluster.api_url}/v1/batches", headers=headers).status_code == 200
    assert "cli-tenant" in run("tenants", "list").stdout
    # When a second key is made and revoked; Then it is refused
    second = run("keys", "create", "cli-tenant")
    new_key = second.stdout.strip().splitlines()[-1]
    key_id = key_id_of(new_key)
    assert key_id in run("keys", "list", "cli-tenant").stdout
    assert run("keys", "revoke", key_id).exit_code == 0
    revoked = httpx.get(
        f"{cluster.api_url}/v1/batches", headers={"Authorization": f"Bearer {new_key}"}
    )
    assert revoked.status_code == 401
    assert run("keys", "revoke", "key_nope").exit_code == 1
    assert run("tenants", "create", "cli-tenant").exit_code == 1


def key_id_of(key: str) -> str:
    with session_scope(get_engine(get_settings().effective_database_url)) as session:
        found = tenants.key_id_for(session, api_key=key)
    assert found is not None
    return found
