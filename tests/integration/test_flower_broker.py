"""Flower's Broker tab lists the four tier queues with their message counts."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest

from loadtests._services import free_port
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Priority
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.queues.app import PRIORITY_VALUE, QueuedJob, make_celery, publish

pytestmark = pytest.mark.integration

ROW = re.compile(r"<tr id=[^>]*>\s*<td>([^<]+)</td>\s*<td[^>]*>\s*(\d+)\s*</td>", re.S)


def test_broker_tab_lists_every_tier_queue_with_its_messages(
    redis_url: str, tmp_path: Path
) -> None:
    # Given a broker (Switchyard's own transport) with no worker, holding 1, 2, 3 and 4
    # messages on the four tier queues, at both priority steps
    prefix = f"syflower-{secrets.token_hex(4)}:"
    env = {"SWITCHYARD_REDIS_URL": redis_url, "SWITCHYARD_REDIS_KEY_PREFIX": prefix}
    app = make_celery(Settings(redis_url=redis_url, redis_key_prefix=prefix))
    want: dict[str, int] = {}
    for count, tier in enumerate(ALL_TIERS, start=1):
        steps = [PRIORITY_VALUE[Priority.INTERACTIVE], PRIORITY_VALUE[Priority.BATCH]]
        jobs = [QueuedJob(f"job_{tier.value}_{i}", tier, steps[i % 2]) for i in range(count)]
        publish(app, jobs)
        want[tier.queue] = count
    # When Flower runs on it through the CLI, as switchyard up starts it
    port = free_port()
    supervisor = Supervisor(env=env, log_dir=tmp_path / "logs")
    try:
        supervisor.spawn("flower", "flower", "--port", str(port))
        supervisor.wait_http(f"http://127.0.0.1:{port}/healthcheck")
        page = httpx.get(f"http://127.0.0.1:{port}/broker", timeout=30)
        # Then the Broker page answers and lists each tier queue with its message count
        assert page.status_code == 200, page.text[:500]
        shown = {name.strip(): int(n) for name, n in ROW.findall(page.text)}
        assert {q: shown.get(q) for q in want} == want, page.text[:2000]
    finally:
        supervisor.stop()
        app.close()
