"""Failover across wire formats, through a real worker: OpenAI-compatible -> Anthropic.

A cluster of its own (simulator, API, one vision worker) runs on a custom
catalog: the cheaper vision deployment speaks OpenAI and its model always
answers 503 (simulator config); the fallback speaks Anthropic. The simulator
keeps the bodies it received, so the test reads what the Anthropic call carried.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.store.db import get_engine
from tests.conftest import free_port
from tests.integration.conftest import settings_env

pytestmark = pytest.mark.integration

IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
COMMON: dict[str, Any] = {
    "provider": "simulator",
    "base_url": "${SIMULATOR_URL}",
    "tiers": ["vision"],
    "context_window": 200000,
    "max_output_tokens": 4096,
    "vision": True,
}
CATALOG = {
    "deployments": [
        {
            **COMMON,
            "name": "fo-openai",
            "api": "openai",
            "model": "gpt-always-503",
            "input_usd_per_mtok": 0.15,
            "output_usd_per_mtok": 0.60,
        },
        {
            **COMMON,
            "name": "fo-anthropic",
            "api": "anthropic",
            "model": "claude-fallback",
            "input_usd_per_mtok": 3.0,
            "output_usd_per_mtok": 15.0,
            "cached_input_usd_per_mtok": 0.30,
        },
    ]
}
SIM_CONFIG = {"models": {"gpt-always-503": {"error_rates": {"503": 1.0}}}}


class FailoverCluster:
    """Handles to the dedicated cluster."""

    def __init__(self, api_url: str, api_key: str, simulator_root: str) -> None:
        self.api_url, self.api_key, self.simulator_root = api_url, api_key, simulator_root


@pytest.fixture(scope="module")
def failover_cluster(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FailoverCluster]:
    root = Path(tmp_path_factory.mktemp("failover"))
    (root / "catalog.yaml").write_text(yaml.safe_dump(CATALOG))
    (root / "sim.yaml").write_text(yaml.safe_dump(SIM_CONFIG))
    sim_port = free_port()
    settings = Settings(
        state_dir=root / "state",
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"syfo-{secrets.token_hex(4)}:",  # its own queues
        simulator_url=f"http://127.0.0.1:{sim_port}/v1",
        catalog_path=root / "catalog.yaml",
        api_port=free_port(),
        worker_concurrency=4,
    )
    env = {**settings_env(settings), "SWITCHYARD_CATALOG_PATH": str(root / "catalog.yaml")}
    api_key = ensure_tenant_key(
        get_engine(database_url), state_dir=settings.state_path, tenant="it-failover"
    )
    supervisor = Supervisor(env=env, log_dir=settings.state_path / "logs")
    try:
        supervisor.spawn(
            "simulator", "simulator", "--port", str(sim_port), "--config", str(root / "sim.yaml")
        )
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        supervisor.spawn("worker-vision", "worker", "--tier", "vision")
        sim_root = f"http://127.0.0.1:{sim_port}"
        supervisor.wait_http(f"{sim_root}/healthz")
        api_url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"{api_url}/readyz")
        yield FailoverCluster(api_url, api_key, sim_root)
    finally:
        supervisor.stop()


def wait_final(cluster: FailoverCluster, job_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(
            f"{cluster.api_url}/v1/jobs/{job_id}", headers=headers
        ).json()
        if job["status"] in ("succeeded", "failed", "cancelled", "expired"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def test_failover_to_anthropic_keeps_system_prompt_images_and_turns(
    failover_cluster: FailoverCluster,
) -> None:
    # Given a vision job with a system prompt, two earlier turns and an image
    job = {
        "tier": "vision",
        "system": "You are a museum guide. Answer in one sentence.",
        "messages": [
            {"role": "user", "content": "I am looking at a painting."},
            {"role": "assistant", "content": "Tell me what you see in it."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Here it is: what is its style?"},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                ],
            },
        ],
        "max_tokens": 200,
    }
    headers = {"Authorization": f"Bearer {failover_cluster.api_key}"}
    created = httpx.post(f"{failover_cluster.api_url}/v1/jobs", json=job, headers=headers)
    assert created.status_code == 202, created.text
    assert created.json()["plan"] == ["fo-openai", "fo-anthropic"]
    # When the worker runs it and the OpenAI-compatible deployment answers 503
    done = wait_final(failover_cluster, created.json()["id"])
    # Then the Anthropic fallback answered
    assert done["status"] == "succeeded", done
    assert done["deployment"] == "fo-anthropic" and done["output"]
    assert done["attempts"] >= 2
    # And the Anthropic call carried the system prompt, the earlier turns and the image
    recent = httpx.get(
        f"{failover_cluster.simulator_root}/_sim/requests", params={"model": "claude-fallback"}
    ).json()["requests"]
    body = recent[-1]["body"]
    assert recent[-1]["format"] == "anthropic"
    assert body["system"] == "You are a museum guide. Answer in one sentence."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "I am looking at a painting."}
    ]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Tell me what you see in it."}
    ]
    text, image = body["messages"][2]["content"]
    assert text == {"type": "text", "text": "Here it is: what is its style?"}
    assert image["type"] == "image"
    assert image["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": IMAGE.split(",", 1)[1],
    }
    # And the OpenAI deployment really was tried first, with the same conversation
    stats = httpx.get(f"{failover_cluster.simulator_root}/_sim/stats").json()["models"]
    assert stats["gpt-always-503"]["errors"].get("503", 0) >= 1
    assert stats["claude-fallback"]["served"] == 1
    first = httpx.get(
        f"{failover_cluster.simulator_root}/_sim/requests", params={"model": "gpt-always-503"}
    ).json()["requests"][0]["body"]
    assert first["messages"][0] == {"role": "system", "content": job["system"]}
    assert len(first["messages"]) == 4
