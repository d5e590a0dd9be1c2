"""Locust load on Switchyard's HTTP API (headless), for capacity tests beyond ``switchyard bench``.

    pip install -e '.[load]'
    switchyard up                       # or any running cluster
    SWITCHYARD_API_KEY=$(cat .switchyard/demo.key) \\
      locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s \\
             --host http://127.0.0.1:8000 --csv /tmp/switchyard

Each simulated client mixes what services do: interactive chat completions
through the OpenAI-compatible endpoint (most of the traffic), single jobs
submitted and polled, small batches, and reads of the model list. Locust
reports latency percentiles and failures per request name. Unlike the
``switchyard bench`` scripts this file measures no baseline of its own: it is
the tool for "how much can this deployment take", not for the acceptance figures.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from locust import HttpUser, between, task  # type: ignore[import-not-found, unused-ignore]

PROMPTS = [
    "Say hello in one word.",
    "Summarise why message queues decouple services, in two sentences.",
    "Write a Python function that reverses a linked list.",
    "Prove that the square root of two is irrational.",
]


def _key() -> str:
    key = os.environ.get("SWITCHYARD_API_KEY")
    if key:
        return key
    path = os.path.join(os.environ.get("SWITCHYARD_STATE_DIR", ".switchyard"), "demo.key")
    with open(path) as handle:
        return handle.read().strip()


class SwitchyardUser(HttpUser):  # type: ignore[misc, unused-ignore]
    """One client service using the API as the README shows."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {_key()}"

    def _message(self) -> dict[str, Any]:
        return {"role": "user", "content": random.choice(PROMPTS)}

    @task(10)
    def chat_completion(self) -> None:
        body = {"model": "auto", "messages": [self._message()], "max_tokens": 32}
        self.client.post("/v1/chat/completions", json=body, name="/v1/chat/completions")

    @task(3)
    def job_submit_and_poll(self) -> None:
        response = self.client.post(
            "/v1/jobs", json={"prompt": random.choice(PROMPTS), "max_tokens": 32}, name="/v1/jobs"
        )
        if response.status_code not in (200, 201, 202):
            return
        job_id = response.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}", name="/v1/jobs/{id}").json()
            if job.get("status") in ("succeeded", "failed", "cancelled", "expired"):
                return
            time.sleep(0.2)

    @task(1)
    def small_batch(self) -> None:
        lines = [{"prompt": random.choice(PROMPTS), "max_tokens": 16} for _ in range(20)]
        self.client.post("/v1/batches", json=lines, name="/v1/batches")

    @task(1)
    def models(self) -> None:
        self.client.get("/v1/models", name="/v1/models")
