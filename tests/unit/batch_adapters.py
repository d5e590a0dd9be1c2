"""What the inline batch adapters' tests share: the in-process simulator and its catalog,
requests, a batch run to its end, and the check that batch answers read as synchronous ones.

The ``sim`` fixture (a default simulator) is in ``tests/unit/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from orchestrator.core.catalog import Deployment, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.simulator.app import create_simulator_app
from orchestrator.simulator.config import SimulatorConfig
from workers.providers.base import Provider
from workers.providers.batch_base import BatchAdapter, BatchState, Manifest, Results


def sim_deployment(name: str) -> Deployment:
    """A built-in deployment whose base URL is the in-process simulator's."""
    return load_catalog(Settings(simulator_url="http://testserver/v1")).get(name)


def simulator(**profile: Any) -> TestClient:
    """The simulator app in process, its default profile set to ``profile``."""
    config = SimulatorConfig.model_validate({"default": profile})
    return TestClient(create_simulator_app(config=config))


def jobs(n: int, prefix: str = "job") -> dict[str, JobRequest]:
    return {
        f"{prefix}_{i}": JobRequest(prompt=f"Say {prefix} {i}.", max_tokens=64) for i in range(n)
    }


def ended_batch(
    adapter: Callable[[TestClient], BatchAdapter], n: int, **profile: Any
) -> tuple[BatchState, Results, dict[str, JobRequest]]:
    """``n`` jobs sent inline as one batch to a simulator with ``profile``, polled once, read."""
    with simulator(**profile) as client:
        batches, requests = adapter(client), jobs(n)
        lines = [batches.line(cid, r) for cid, r in requests.items()]
        made = batches.create(None, "t", lines).id
        state = batches.poll(made)
        manifest = Manifest("t", len(requests), tuple(requests))
        found = batches.results(made, state.output_file_id, None, manifest)
    return state, found, requests


def assert_answers_read_as_sync(
    batches: BatchAdapter,
    found: Results,
    requests: dict[str, JobRequest],
    sync: Provider,
    dep: Deployment,
) -> None:
    """Every request answered, each read as ``sync`` reads its own answer, at half its price."""
    assert set(found.bodies) == set(requests) and not found.failed, found
    priced = dep.batch_priced()
    for cid, request in requests.items():
        done = batches.parse(found.bodies[cid], request)
        same = sync.complete(dep, request)
        assert (done.text, done.usage) == (same.text, same.usage), cid
        # and at the catalog's batch price: half the synchronous cost
        assert abs(2 * cost_micro_usd(priced, done.usage) - cost_micro_usd(dep, done.usage)) <= 1
