"""The lifecycle's crash points for providers whose requests go inline (issue 26).

Anthropic's Message Batches and Gemini's batch mode have no file step; a worker
that died after its create reached the provider must find that batch (by size,
time and custom ids for Anthropic, by display name for Gemini), not make a
second. Real Postgres (a private schema), the real dispatcher and ``Advancer``;
the simulator in-process, as in ``test_provider_batch_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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


class Killed(BaseException):
    """The worker's SIGKILL, at a chosen point of a create call."""


class Dying:
    """A batch adapter whose ``create`` may die before or after the provider has it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.dies: str | None = None  # "before" | "after" the create reaches the provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def create(self, file_id: str | None, tag: str, lines: Sequence[bytes] = ()) -> Any:
        if self.dies == "before":
            raise Killed(tag)
        made = self.real.create(file_id, tag, lines)
        if self.dies == "after":
            raise Killed(tag)
        return made


def advance(world: World, batch_id: str) -> str:
    """One delivery of the advance task; a killed worker's hold lapses at once."""
    try:
        return world.advancer.advance(batch_id)
    except Killed:
        world.die_holding(batch_id)
        return "killed"


@pytest.fixture
def slow_world(private_database: str, tmp_path: Path) -> Iterator[World]:
    config = SimulatorConfig.model_validate({"default": {"batch_processing_s": 1.0}})
    yield from make_world(private_database, tmp_path, config)


def test_two_anthropic_creates_killed_at_once_never_take_each_others_batch(
    slow_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = slow_world
    name, model, tier, list_path = CASES["anthropic"]
    dep = world.catalog.get(name)
    # Given two provider batches of one Anthropic deployment, of the same size, that
    # run a second at the provider (its batches carry no tag: a lost create is found by
    # size and time, and a batch still running cannot show whose lines it holds)
    first_jobs = submit(world, model, tier, 3)
    first = world.gather()
    second_jobs = submit(world, model, tier, 3)
    second = world.gather()
    dying = Dying(world.advancer.ctx.adapter(dep))
    monkeypatch.setattr(world.advancer.ctx, "adapter", lambda _dep: dying)
    # When one worker is killed just after the first's create reached Anthropic, and
    # (the same SIGKILL) while the second's create had not yet left
    dying.dies = "after"
    assert advance(world, first) == "killed"
    dying.dies = "before"
    advance(world, second)
    # and both are advanced again, in turn, until submitted
    dying.dies = None
    for _ in range(3):
        for batch_id in (second, first):
            if world.batch(batch_id).state != "submitted":
                world.die_holding(batch_id)
                advance(world, batch_id)
    # Then Anthropic holds exactly two batches, one recorded by each of ours
    made = {world.batch(first).provider_batch_id, world.batch(second).provider_batch_id}
    assert None not in made and len(made) == 2
    assert set(listed(world, list_path)) == made
    # and each is collected with its own lines: every job answered once, by batch
    for batch_id in (first, second):
        said = "polled"
        for _ in range(50):
            world.die_holding(batch_id)
            said = advance(world, batch_id)
            if not said.startswith("polled"):
                break
            time.sleep(0.1)
        assert said == "done: 3 answered, 0 sent back"
    assert all(len(rows) == 1 for rows in ledger(world, first_jobs + second_jobs).values())
