"""The lifecycle's crash points for providers whose requests go inline (issue 26).

Anthropic's Message Batches and Gemini's batch mode have no file step; a worker
that died after its create reached the provider must find that batch (by size,
time and custom ids for Anthropic, by display name for Gemini), not make a
second. Real Postgres (a private schema), the real dispatcher and ``Advancer``;
the simulator in-process, as in ``test_provider_batch_steps``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.core.schemas import JobRequest, Usage
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job
from orchestrator.store.provider_batch_models import ProviderBatchLine
from tests.integration.reliability import private_database
from tests.integration.test_provider_batch_steps import World, ledger, make_world
from workers.batch_files import build_file

pytestmark = pytest.mark.integration
__all__ = ["private_database"]
CASES = {
    "anthropic": ("sim-claude-sonnet-4", "claude-sonnet-4", "reasoning", "/v1/messages/batches"),
    "gemini": ("sim-gemini-2.5-flash", "gemini-2.5-flash", "vision", "/v1beta/batches"),
}


@pytest.fixture
def world(private_database: str, tmp_path: Path) -> Iterator[World]:
    yield from make_world(private_database, tmp_path, SimulatorConfig())


def submit(world: World, model: str, tier: str, n: int) -> list[str]:
    fields = {"tier": tier, "model": model, "completion_window": "24h", "max_tokens": 64}
    return [
        world.dispatcher.submit_job(
            tenant_id=world.tenant_id,
            request=JobRequest.model_validate({"prompt": f"Say {i}.", **fields}),
        )
        for i in range(n)
    ]


def listed(world: World, path: str) -> list[str]:
    body = world.sim.get(path).json()
    items = body.get("data", body.get("operations")) or []
    return [str(item.get("id") or item.get("name")) for item in items]


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_worker_dying_after_an_inline_create_submits_nothing_twice(
    world: World, provider: str
) -> None:
    name, model, tier, list_path = CASES[provider]
    dep = world.catalog.get(name)
    # Given three jobs gathered into one provider batch for the deployment
    job_ids = submit(world, model, tier, 3)
    batch_id = world.gather()
    assert world.batch(batch_id).deployment == name
    # and a worker that wrote ``submitting``, created the batch inline, then died
    adapter = world.advancer.ctx.adapter(dep)
    assert adapter is not None and not adapter.uploads
    with session_scope(world.engine) as session:
        lines = build_file(session, batch_id=batch_id, deployment=dep, line=adapter.line)
    world.die_holding(batch_id, state="submitting", lines=len(lines))
    made = adapter.create(None, batch_id, lines)
    # When the advance task runs again, and again once its countdown is due
    assert world.advancer.advance(batch_id) == "submitted"
    assert world.batch(batch_id).provider_batch_id == made.id
    world.die_holding(batch_id)
    said = world.advancer.advance(batch_id)
    # Then the provider holds that one batch only, and each job has its answer once,
    # billed at the catalog's batch price
    assert said == "done: 3 answered, 0 sent back", said
    assert listed(world, list_path) == [made.id]
    priced = dep.batch_priced()
    for job_id, rows in ledger(world, job_ids).items():
        assert len(rows) == 1, (job_id, rows)
        usage = Usage(input_tokens=rows[0].input_tokens, output_tokens=rows[0].output_tokens)
        assert rows[0].cost_micro_usd == cost_micro_usd(priced, usage) > 0
    with session_scope(world.engine) as session:
        jobs = session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
        assert {j.status for j in jobs} == {"succeeded"} and all(j.output for j in jobs)
        assert set(session.scalars(select(ProviderBatchLine.state))) == {"answered"}


@pytest.mark.parametrize("provider", sorted(CASES))
def test_an_inline_batch_goes_from_prepared_to_done(world: World, provider: str) -> None:
    _, model, tier, list_path = CASES[provider]
    # Given two held jobs gathered into one provider batch
    job_ids = submit(world, model, tier, 2)
    batch_id = world.gather()
    # When it is advanced (no file step), then polled and collected
    assert world.advancer.advance(batch_id) == "submitted"
    made = world.batch(batch_id)
    assert made.provider_file_id is None and made.lines == 2
    world.die_holding(batch_id)
    assert world.advancer.advance(batch_id) == "done: 2 answered, 0 sent back"
    # Then one provider batch was made, and both jobs have one ledger row each
    assert listed(world, list_path) == [made.provider_batch_id]
    assert all(len(rows) == 1 for rows in ledger(world, job_ids).values())
