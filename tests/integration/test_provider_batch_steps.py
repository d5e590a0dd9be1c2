"""The provider batch lifecycle, step by step (issue 26): crash points and line outcomes.

Real Postgres (a private schema) and the real dispatcher; the simulator's batch
endpoints in-process (a ``TestClient`` is the ``httpx.Client`` the adapter takes).
A worker that dies between two steps is played by doing its step by hand and
letting its hold lapse; the next ``Advancer.advance`` must find what it did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from orchestrator.admission.dispatch import Dispatcher
from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest, Usage
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.queues.app import make_celery
from orchestrator.services.provider_batch_driver import Due, drive, gather_ready
from orchestrator.simulator.app import create_simulator_app
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry, utcnow
from orchestrator.store.provider_batch_models import ProviderBatch, ProviderBatchLine
from tests.integration.reliability import private_database
from workers.batch_advance import Advancer
from workers.batch_context import BatchContext
from workers.batch_files import build_file
from workers.providers.batch_openai import OpenAIBatchAdapter

pytestmark = pytest.mark.integration
__all__ = ["private_database"]
DEPLOYMENT = "sim-gpt-4o-mini"


@dataclass
class World:
    """A dispatcher, a simulator and an advancer sharing one database."""

    settings: Settings
    catalog: Catalog
    dispatcher: Dispatcher
    sim: TestClient
    advancer: Advancer
    tenant_id: str
    countdowns: list[tuple[Due, float]] = field(default_factory=list)

    @property
    def engine(self) -> Any:
        return self.dispatcher.engine

    def submit(self, n: int) -> list[str]:
        request = {"tier": "fast", "model": "gpt-4o-mini", "completion_window": "24h"}
        return [
            self.dispatcher.submit_job(
                tenant_id=self.tenant_id,
                request=JobRequest.model_validate({"prompt": f"Say {i}.", **request}),
            )
            for i in range(n)
        ]

    def gather(self) -> str:
        with session_scope(self.engine) as session:
            made = gather_ready(session, self.catalog, self.settings, utcnow())
        assert len(made) == 1, made
        return made[0].batch_id

    def adapter(self) -> OpenAIBatchAdapter:
        http = cast(httpx.Client, self.sim)
        return OpenAIBatchAdapter(http, self.catalog.get(DEPLOYMENT), None)

    def batch(self, batch_id: str) -> ProviderBatch:
        with session_scope(self.engine) as session:
            found = session.get(ProviderBatch, batch_id)
            assert found is not None
            return found

    def die_holding(self, batch_id: str, **values: Any) -> None:
        """The worker holding the batch dies after writing ``values``: its hold lapses."""
        lapsed = utcnow() - timedelta(seconds=1)
        with session_scope(self.engine) as session:
            session.execute(
                update(ProviderBatch)
                .where(ProviderBatch.id == batch_id)
                .values(locked_until=lapsed, next_poll_at=lapsed, **values)
            )

    def provider_batches(self) -> list[dict[str, Any]]:
        listed = self.sim.get("/v1/batches", params={"limit": 100}).json()
        return cast(list[dict[str, Any]], listed["data"])


def make_world(url: str, tmp_path: Path, sim_config: SimulatorConfig) -> Iterator[World]:
    settings = Settings(
        database_url=url,
        state_dir=tmp_path,
        simulator_url="http://testserver/v1",
        provider_batch_enabled=True,
        provider_batch_gather_s=0,
    )
    engine = get_engine(url)
    key = ensure_tenant_key(engine, state_dir=tmp_path, tenant="pbatch-steps")
    with session_scope(engine) as session:
        tenant_id = repo.tenant_for_api_key(session, api_key=key)
    assert tenant_id is not None
    catalog = load_catalog(settings)
    dispatcher = Dispatcher(settings, catalog, engine, make_celery(settings))
    with TestClient(create_simulator_app(config=sim_config)) as sim:
        countdowns: list[tuple[Due, float]] = []
        ctx = BatchContext(
            settings=settings,
            catalog=catalog,
            engine=engine,
            http=cast(httpx.Client, sim),
            owner="test-worker",
            scheduler=lambda due, delay_s: countdowns.append((due, delay_s)),
        )
        yield World(settings, catalog, dispatcher, sim, Advancer(ctx), tenant_id, countdowns)


@pytest.fixture
def world(private_database: str, tmp_path: Path) -> Iterator[World]:
    yield from make_world(private_database, tmp_path, SimulatorConfig())


def ledger(world: World, job_ids: list[str]) -> dict[str, list[LedgerEntry]]:
    with session_scope(world.engine) as session:
        rows = session.scalars(select(LedgerEntry).where(LedgerEntry.job_id.in_(job_ids))).all()
    found: dict[str, list[LedgerEntry]] = {j: [] for j in job_ids}
    for row in rows:
        found[row.job_id].append(row)
    return found


def test_a_worker_dying_after_its_upload_uploads_nothing_twice(world: World) -> None:
    # Given three held jobs gathered into one provider batch
    job_ids = world.submit(3)
    batch_id = world.gather()
    # and a worker that wrote ``uploading``, uploaded the file, then died
    dep = world.catalog.get(DEPLOYMENT)
    with session_scope(world.engine) as session:
        lines = build_file(session, batch_id=batch_id, deployment=dep)
    world.die_holding(batch_id, state="uploading")
    file_id = world.adapter().upload(f"{batch_id}.jsonl", lines)
    # When the advance task runs again
    said = world.advancer.advance(batch_id)
    # Then it found that file, created one provider batch from it, and will poll later
    assert said == "submitted", said
    made = world.batch(batch_id)
    assert (made.state, made.provider_file_id) == ("submitted", file_id)
    files = world.sim.get("/v1/files", params={"purpose": "batch"}).json()["data"]
    assert [f["filename"] for f in files] == [f"{batch_id}.jsonl"]
    assert [b["id"] for b in world.provider_batches()] == [made.provider_batch_id]
    assert world.countdowns == [(Due(batch_id, world.countdowns[0][0].tier), 5.0)]
    # When it is polled (the simulator finished at once) and collected
    world.die_holding(batch_id)  # the countdown is due
    assert world.advancer.advance(batch_id).startswith("done: 3 answered"), world.batch(batch_id)
    # Then every job succeeded once, with one ledger row at the batch price
    priced = dep.batch_priced()
    for job_id, rows in ledger(world, job_ids).items():
        assert len(rows) == 1, (job_id, rows)
        usage = Usage(input_tokens=rows[0].input_tokens, output_tokens=rows[0].output_tokens)
        assert rows[0].cost_micro_usd == cost_micro_usd(priced, usage)
        assert rows[0].cost_micro_usd < cost_micro_usd(dep, usage)
    with session_scope(world.engine) as session:
        jobs = session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
        assert {j.status for j in jobs} == {"succeeded"}
        assert all(j.output for j in jobs)
        line_states = session.scalars(select(ProviderBatchLine.state)).all()
        assert set(line_states) == {"answered"}


def test_a_worker_dying_after_create_submits_nothing_twice(world: World) -> None:
    # Given a batch whose worker uploaded, wrote ``submitting``, created it, then died
    job_ids = world.submit(2)
    batch_id = world.gather()
    dep = world.catalog.get(DEPLOYMENT)
    with session_scope(world.engine) as session:
        lines = build_file(session, batch_id=batch_id, deployment=dep)
    file_id = world.adapter().upload(f"{batch_id}.jsonl", lines)
    made = world.adapter().create(file_id, batch_id)
    world.die_holding(batch_id, state="submitting", provider_file_id=file_id)
    # When the advance task runs again, and again once its countdown is due
    assert world.advancer.advance(batch_id) == "submitted"
    world.die_holding(batch_id)
    assert world.advancer.advance(batch_id).startswith("done: 2 answered")
    # Then the provider holds that one batch only, and both jobs have their answer
    assert [b["id"] for b in world.provider_batches()] == [made.id]
    assert world.batch(batch_id).provider_batch_id == made.id
    assert all(len(rows) == 1 for rows in ledger(world, job_ids).values())


def test_a_second_collect_bills_nothing_twice(world: World) -> None:
    # Given a batch collected once
    job_ids = world.submit(2)
    batch_id = world.gather()
    world.advancer.advance(batch_id)
    world.die_holding(batch_id)
    world.advancer.advance(batch_id)
    # When a worker that died while collecting had left it ``collecting``
    world.die_holding(batch_id, state="collecting")
    said = world.advancer.advance(batch_id)
    # Then nothing more is written
    assert said.startswith("done: 0 answered"), said
    assert all(len(rows) == 1 for rows in ledger(world, job_ids).values())
    with session_scope(world.engine) as session:
        attempts = session.scalars(select(Attempt).where(Attempt.job_id.in_(job_ids))).all()
        assert len(attempts) == 2


@pytest.fixture
def failing_world(private_database: str, tmp_path: Path) -> Iterator[World]:
    config = SimulatorConfig.model_validate(
        {"default": {"batch_expire_rate": 1.0, "batch_line_error_rate": 0.0}}
    )
    yield from make_world(private_database, tmp_path, config)


def expire_half(world: World, n: int) -> tuple[list[str], str, str]:
    """``n`` held jobs in a provider batch that expires half-done, collected."""
    job_ids = world.submit(n)
    batch_id = world.gather()
    world.advancer.advance(batch_id)
    world.die_holding(batch_id)
    return job_ids, batch_id, world.advancer.advance(batch_id)


def test_an_expired_batch_s_unfinished_lines_wait_for_the_next_batch(failing_world: World) -> None:
    world = failing_world
    # Given four held jobs with a 24h window in a provider batch that expires half-done
    # When it is collected
    job_ids, batch_id, said = expire_half(world, 4)
    # Then the finished half is answered, and the rest waits for the next provider
    # batch (at the batch price): its lines count one try, its jobs stay queued until
    # their time to run synchronously
    assert said == "done: 2 answered, 0 sent back, 2 back to wait", said
    assert world.batch(batch_id).provider_status == "expired"
    with session_scope(world.engine) as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        lines = {ln.job_id: ln for ln in session.scalars(select(ProviderBatchLine))}
    back = [j for j in jobs.values() if lines[j.id].state == "waiting"]
    assert len(back) == 2 and all(j.status == "queued" for j in back)
    assert all(lines[j.id].tries == 1 and lines[j.id].provider_batch_id is None for j in back)
    later = utcnow() + timedelta(hours=20)
    assert all(j.next_attempt_at is not None and j.next_attempt_at > later for j in back)
    assert sum(1 for j in jobs.values() if j.status == "succeeded") == 2
    # and the next gathering puts them in a new provider batch
    again = world.gather()
    assert again != batch_id and world.batch(again).lines == 2


@pytest.mark.parametrize(
    "knob", [{"provider_batch_max_tries": 1}, {"provider_batch_retry_min_s": 86_400}]
)
def test_an_expired_batch_sends_its_unfinished_jobs_to_sync_when_no_try_or_time_is_left(
    failing_world: World, knob: dict[str, int]
) -> None:
    world = failing_world
    # Given lines that may be sent once only, or jobs whose time to run synchronously
    # (23.5 h away) is nearer than a retry needs
    ctx = world.advancer.ctx
    ctx.settings = ctx.settings.model_copy(update=knob)
    # When their provider batch expires half-done and is collected
    job_ids, _, said = expire_half(world, 4)
    # Then the unfinished half is due now on the synchronous path
    assert said == "done: 2 answered, 2 sent back", said
    with session_scope(world.engine) as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        lines = {ln.job_id: ln.state for ln in session.scalars(select(ProviderBatchLine))}
    back = [j for j in jobs.values() if lines[j.id] == "released"]
    assert len(back) == 2 and all(j.status == "queued" for j in back)
    assert all(j.next_attempt_at is not None and j.next_attempt_at <= utcnow() for j in back)
    assert sum(1 for j in jobs.values() if j.status == "succeeded") == 2


def test_turning_the_path_off_sends_waiting_jobs_to_sync_at_once(world: World) -> None:
    # Given two jobs waiting to be gathered
    job_ids = world.submit(2)
    # When the reconciler's pass runs with the path turned off
    off = world.settings.model_copy(update={"provider_batch_enabled": False})
    with session_scope(world.engine) as session:
        sent = drive(session, world.dispatcher.celery, lambda: world.catalog, off, utcnow())
    # Then no provider batch is made, and both jobs are due now on the synchronous path
    assert sent == 0
    with session_scope(world.engine) as session:
        assert session.scalars(select(ProviderBatch)).all() == []
        jobs = session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
        lines = session.scalars(select(ProviderBatchLine.state)).all()
    assert set(lines) == {"released"}
    assert all(j.next_attempt_at is not None and j.next_attempt_at <= utcnow() for j in jobs)
