"""A 200-turn session through real workers and the simulator's context-window enforcement.

A cluster of its own (simulator, API, fast worker, reconciler) runs on a test
catalog with two fast deployments: ``ctx-8k`` (OpenAI format, 8,192-token
window, cheaper, so first in the plan) and ``ctx-4k`` (Anthropic format,
4,096-token window). The simulator refuses any prompt that does not fit a
model's window. The client sends only each new turn; Switchyard keeps the
conversation. Part way through, ``ctx-8k`` starts failing, and the session
moves to the 4k fallback.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
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

COMMON: dict[str, Any] = {
    "provider": "simulator",
    "base_url": "${SIMULATOR_URL}",
    "tiers": ["fast"],
    "max_output_tokens": 4096,
}
CATALOG = {
    "deployments": [
        {
            **COMMON,
            "name": "ctx-8k",
            "api": "openai",
            "model": "sim-8k",
            "context_window": 8192,
            "input_usd_per_mtok": 0.15,
            "output_usd_per_mtok": 0.60,
        },
        {
            **COMMON,
            "name": "ctx-4k",
            "api": "anthropic",
            "model": "sim-4k",
            "context_window": 4096,
            "input_usd_per_mtok": 1.0,
            "output_usd_per_mtok": 4.0,
        },
    ]
}
WINDOWS = {"sim-8k": {"context_window": 8192}, "sim-4k": {"context_window": 4096}}
SYSTEM = "You are Switchyard's test tutor. Keep every answer short and on topic."
TURNS, SWITCH_AT = 200, 120
FILLER = "Please consider the previous answer carefully and then continue the story. " * 8


@dataclass
class SessionCluster:
    """Handles to the dedicated cluster."""

    api_url: str
    api_key: str
    sim: str


@pytest.fixture(scope="module")
def session_cluster(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SessionCluster]:
    root = Path(tmp_path_factory.mktemp("sessions"))
    (root / "catalog.yaml").write_text(yaml.safe_dump(CATALOG))
    (root / "sim.yaml").write_text(yaml.safe_dump({"models": WINDOWS}))
    sim_port = free_port()
    settings = Settings(
        state_dir=root / "state",
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"sysess-{secrets.token_hex(4)}:",
        simulator_url=f"http://127.0.0.1:{sim_port}/v1",
        catalog_path=root / "catalog.yaml",
        api_port=free_port(),
        worker_concurrency=4,
        tenant_rate_limit_rpm=0,
    )
    env = {**settings_env(settings), "SWITCHYARD_CATALOG_PATH": str(root / "catalog.yaml")}
    api_key = ensure_tenant_key(
        get_engine(database_url), state_dir=settings.state_path, tenant="it-sessions"
    )
    supervisor = Supervisor(env=env, log_dir=settings.state_path / "logs")
    try:
        supervisor.spawn(
            "simulator", "simulator", "--port", str(sim_port), "--config", str(root / "sim.yaml")
        )
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        supervisor.spawn("worker-fast", "worker", "--tier", "fast")
        supervisor.spawn("reconciler", "reconciler")
        sim = f"http://127.0.0.1:{sim_port}"
        supervisor.wait_http(f"{sim}/healthz")
        api_url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"{api_url}/readyz")
        yield SessionCluster(api_url, api_key, sim)
    finally:
        supervisor.stop()


def run_turn(c: SessionCluster, client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = client.post(f"{c.api_url}/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"{c.api_url}/v1/jobs/{created.json()['id']}").json()
        if job["status"] in ("succeeded", "failed", "cancelled", "expired"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"turn did not finish: {created.json()['id']}")


def last_body(c: SessionCluster, model: str) -> dict[str, Any]:
    recent = httpx.get(f"{c.sim}/_sim/requests", params={"model": model}).json()["requests"]
    body: dict[str, Any] = recent[-1]["body"]
    return body


def check_sent(c: SessionCluster, job: dict[str, Any], text: str, previous: str | None) -> None:
    """The provider got the system prompt first and this turn last, verbatim."""
    if job["deployment"] == "ctx-8k":
        messages = last_body(c, "sim-8k")["messages"]
        assert messages[0] == {"role": "system", "content": SYSTEM}
        assert messages[-1] == {"role": "user", "content": text}
        earlier = messages[-2]["content"] if len(messages) > 2 else None
    else:
        body = last_body(c, "sim-4k")
        assert body["system"] == SYSTEM or body["system"].startswith(SYSTEM + "\n\n")
        assert body["messages"][-1] == {"role": "user", "content": [{"type": "text", "text": text}]}
        prior = body["messages"][-2]["content"] if len(body["messages"]) > 1 else []
        earlier = prior[-1]["text"] if prior else None
    if previous is not None:  # the conversation continues: the last answer is right before
        assert earlier == previous


def test_a_200_turn_session_fits_8k_then_continues_on_a_4k_fallback(
    session_cluster: SessionCluster,
) -> None:
    c, session_id = session_cluster, f"sess-{secrets.token_hex(4)}"
    client = httpx.Client(headers={"Authorization": f"Bearer {c.api_key}"}, timeout=30)
    served: list[str] = []
    first_choice: list[str] = []
    previous: str | None = None
    for turn in range(TURNS):
        if turn == SWITCH_AT:  # Given the 8k deployment starts failing part way through
            failing = {**WINDOWS, "sim-8k": {**WINDOWS["sim-8k"], "error_rates": {"503": 1.0}}}
            assert httpx.put(f"{c.sim}/_sim/config", json={"models": failing}).status_code == 200
        # When the client sends only the new turn (the system prompt once, on the first)
        text = f"Turn {turn}: {FILLER}"
        body = {
            "session_id": session_id,
            "tier": "fast",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": text}],
        }
        if turn == 0:
            body["system"] = SYSTEM
        job = run_turn(c, client, body)
        # Then every turn succeeds, with the system prompt and the turn sent verbatim
        assert job["status"] == "succeeded", (turn, job)
        check_sent(c, job, text, previous)
        served.append(job["deployment"])
        first_choice.append(job["plan"][0])
        previous = job["output"]
    # And the 8k deployment served every turn before the switch, the 4k one every turn after
    assert set(served[:SWITCH_AT]) == {"ctx-8k"}
    assert set(served[SWITCH_AT:]) == {"ctx-4k"}
    # And from the turn after the switch, affinity puts the 4k deployment first in the plan
    assert set(first_choice[: SWITCH_AT + 1]) == {"ctx-8k"}
    assert set(first_choice[SWITCH_AT + 1 :]) == {"ctx-4k"}
    # And no call ever exceeded a window (the simulator would have refused it)
    stats = httpx.get(f"{c.sim}/_sim/stats").json()["models"]
    assert "context_length" not in stats["sim-8k"]["errors"]
    assert "context_length" not in stats["sim-4k"]["errors"]
    assert stats["sim-4k"]["served"] == TURNS - SWITCH_AT
    # And the whole conversation is kept: every turn and every answer
    kept = client.get(f"{c.api_url}/v1/sessions/{session_id}").json()
    assert kept["turns"] == 2 * TURNS and kept["last_deployment"] == "ctx-4k"
    assert kept["system"] == SYSTEM and kept["context_window"] == 4096
    # And the conversation was long enough that most of it had to be dropped or digested
    assert kept["context_start"] > TURNS
    client.close()


def test_sessions_are_scoped_by_tenant(
    session_cluster: SessionCluster, database_url: str, tmp_path: Path
) -> None:
    c = session_cluster
    headers = {"Authorization": f"Bearer {c.api_key}"}
    session_id = f"sess-{secrets.token_hex(4)}"
    with httpx.Client(headers=headers, timeout=30) as client:
        job = run_turn(c, client, {"session_id": session_id, "prompt": "Hello there"})
        assert job["status"] == "succeeded"
        assert client.get(f"{c.api_url}/v1/sessions/{session_id}").status_code == 200
    # Given another tenant
    other = ensure_tenant_key(
        get_engine(database_url), state_dir=tmp_path, tenant=f"it-sess-{secrets.token_hex(3)}"
    )
    with httpx.Client(headers={"Authorization": f"Bearer {other}"}, timeout=30) as client:
        # Then it cannot see or delete the first tenant's session
        assert client.get(f"{c.api_url}/v1/sessions/{session_id}").status_code == 404
        assert client.delete(f"{c.api_url}/v1/sessions/{session_id}").status_code == 404
        # And its own turn with the same session id starts a separate conversation
        job = run_turn(c, client, {"session_id": session_id, "prompt": "Hi"})
        mine = client.get(f"{c.api_url}/v1/sessions/{session_id}", params={"messages": "true"})
        assert job["status"] == "succeeded" and mine.json()["turns"] == 2
        assert mine.json()["messages"][0] == {"role": "user", "content": "Hi"}
