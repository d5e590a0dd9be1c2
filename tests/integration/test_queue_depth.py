"""GET /queues counts every Redis priority sub-list of a tier queue, as the autoscaler needs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.core.tiers import Tier
from orchestrator.queues.app import QueuedJob, make_celery, publish
from tests.conftest import free_port
from tests.integration.conftest import settings_env

pytestmark = pytest.mark.integration

# priority -> kombu step it folds into (steps 0, 3, 6, 9): 5 shares step 3, 7 shares 6
PUBLISHED = {Tier.FAST: {0: 2, 3: 1, 5: 2, 6: 7, 9: 1}, Tier.CODE: {6: 4, 7: 1}}


@pytest.fixture(scope="module")
def api_without_workers(
    database_url: str, redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings]]:
    """An API process on a key prefix no worker consumes, so published messages stay queued."""
    state = Path(tmp_path_factory.mktemp("depth"))
    settings = Settings(
        state_dir=state,
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"{key_prefix}depth-{secrets.token_hex(3)}:",
        api_port=free_port(),
    )
    supervisor = Supervisor(env=settings_env(settings), log_dir=state / "logs")
    try:
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"{url}/readyz")
        yield url, settings
    finally:
        supervisor.stop()


def test_queue_depth_counts_every_priority_sub_list(
    api_without_workers: tuple[str, Settings],
) -> None:
    url, settings = api_without_workers
    celery = make_celery(settings)
    # Given messages published at every priority on two tier queues (nobody consumes them)
    jobs = [
        QueuedJob(job_id=f"job-{tier.value}-{priority}-{i}", tier=tier, priority=priority)
        for tier, counts in PUBLISHED.items()
        for priority, count in counts.items()
        for i in range(count)
    ]
    publish(celery, jobs)

    # When the autoscaler's endpoint is read, without an API key
    response = httpx.get(f"{url}/queues", timeout=10)

    # Then each tier's depth is the sum over its sub-lists, and each step has its share
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {t.value for t in Tier}
    fast_steps = {"0": 2, "3": 3, "6": 7, "9": 1}
    assert body["fast"] == {"depth": 13, "by_priority": fast_steps, "messages": 13}
    code_steps = {"0": 0, "3": 0, "6": 5, "9": 0}
    assert body["code"] == {"depth": 5, "by_priority": code_steps, "messages": 5}
    assert body["reasoning"]["depth"] == body["vision"]["depth"] == 0
    # And it agrees with kombu's own count of the queue
    with celery.connection_for_read() as conn:
        channel = conn.default_channel
        for tier in PUBLISHED:
            declared = channel.queue_declare(queue=tier.queue)
            assert declared.message_count == body[tier.value]["depth"]
    # And a KEDA ScaledObject's valueLocation ("fast.depth") finds the number
    assert isinstance(body["fast"]["depth"], int)

    # When 40 batch jobs are published as batch messages (16 a message: 16 + 16 + 8)
    batch = [QueuedJob(job_id=f"job-batch-{i}", tier=Tier.VISION, priority=6) for i in range(40)]
    publish(celery, batch, chunk=16)
    # Then the depth counts the jobs, and messages the three messages holding them
    vision = httpx.get(f"{url}/queues", timeout=10).json()["vision"]
    assert vision == {"depth": 40, "by_priority": {"0": 0, "3": 0, "6": 40, "9": 0}, "messages": 3}
