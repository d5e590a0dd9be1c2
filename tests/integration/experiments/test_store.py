"""Experiments in the database: catalog sync, admission rebuilt from the database, guardrail."""

from __future__ import annotations

import secrets

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.experiment_specs import ArmSpec, CatalogExperiment, ExperimentSpec
from orchestrator.core.schemas import JobRequest
from orchestrator.experiments import records as store
from orchestrator.experiments.assignment import Enroller
from orchestrator.experiments.catalog_sync import sync_catalog_experiments
from orchestrator.experiments.guardrail import check
from orchestrator.routing import StrengthPolicy, route
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Experiment, Job, new_id

SETTINGS = Settings()


def tenant(url: str) -> tuple[str, str]:
    name = f"store-{secrets.token_hex(4)}"
    with session_scope(get_engine(url)) as session:
        return repo.create_tenant(session, name=name).id, name


def test_catalog_experiments_are_created_once(database_url: str) -> None:
    # Given a catalog declaring an experiment for an existing tenant and one for nobody
    engine = get_engine(database_url)
    tenant_id, name = tenant(database_url)
    arms = [ArmSpec(name="a"), ArmSpec(name="b", quality=1.0)]
    catalog = load_catalog(SETTINGS).model_copy(
        update={
            "experiments": (
                CatalogExperiment(name="from-yaml", tenant=name, arms=arms),
                CatalogExperiment(name="orphan", tenant=f"missing-{name}", arms=arms),
            )
        }
    )
    # When the API starts twice; Then it is created once, for that tenant only
    assert sync_catalog_experiments(engine, catalog, SETTINGS) == ["from-yaml"]
    assert sync_catalog_experiments(engine, catalog, SETTINGS) == []
    with session_scope(engine) as session:
        found = store.get(session, tenant_id=tenant_id, ref="from-yaml")
        assert found.source == "catalog" and found.status == "running"


def test_assignment_is_rebuilt_identically_from_the_database(database_url: str) -> None:
    # Given a running experiment assigned by session
    engine = get_engine(database_url)
    tenant_id, _ = tenant(database_url)
    spec = ExperimentSpec(
        name="rebuild",
        unit="session",
        arms=[ArmSpec(name="a", weight=2), ArmSpec(name="b", deployments=["sim-gpt-4.1"])],
    )
    with session_scope(engine) as session:
        store.create(session, tenant_id=tenant_id, spec=spec)
    catalog = load_catalog(SETTINGS)

    def arms() -> dict[str, str]:
        enroller = Enroller(SETTINGS, catalog, engine, StrengthPolicy.from_settings(SETTINGS))
        out = {}
        for i in range(200):
            request = JobRequest(prompt="Hello there", metadata={"session_id": f"s{i}"})
            got = enroller.assign(
                tenant_id=tenant_id,
                job_id=new_id("job"),
                request=request,
                decision=route(request, catalog),
            )
            assert got is not None
            if got.arm == "b":
                assert [d.name for d in got.decision.plan] == ["sim-gpt-4.1"]
            out[f"s{i}"] = got.arm
        return out

    # When two fresh enrollers (as after a restart) assign the same sessions
    first, second = arms(), arms()
    # Then each session gets the same arm, and the 2:1 weights show
    assert first == second
    assert 0.56 < sum(a == "a" for a in first.values()) / 200 < 0.77


def test_guardrail_pauses_on_failed_calls_and_admission_follows(database_url: str) -> None:
    engine = get_engine(database_url)
    tenant_id, _ = tenant(database_url)
    spec = ExperimentSpec(name="guard", unit="job", arms=[ArmSpec(name="c"), ArmSpec(name="r")])
    with session_scope(engine) as session:
        experiment_id = store.create(session, tenant_id=tenant_id, spec=spec).id
    # Given 30 finished jobs per arm, where r's calls failed half the time
    with session_scope(engine) as session:
        for arm in ("c", "r"):
            for _ in range(30):
                job = Job(
                    tenant_id=tenant_id,
                    tier="fast",
                    request={"prompt": "x"},
                    status="succeeded",
                    experiment_id=experiment_id,
                    experiment_arm=arm,
                    plan=["d"],
                    deployment="d",
                )
                session.add(job)
                session.flush()
                outcomes = ["ok"] if arm == "c" else ["ServerError", "ok"]
                for outcome in outcomes:
                    session.add(
                        Attempt(
                            job_id=job.id,
                            tenant_id=tenant_id,
                            deployment="d",
                            provider="p",
                            model="m",
                            outcome=outcome,
                        )
                    )
    # When the guardrail checks; Then r is paused once, with its reason
    assert check(engine, experiment_id) == ["r"]
    assert check(engine, experiment_id) == []
    with session_scope(engine) as session:
        row = session.get(Experiment, experiment_id)
        assert row is not None and "error rate 0.500" in row.paused["r"]["reason"]
    # And admission sends every job to control from now on
    catalog = load_catalog(SETTINGS)
    enroller = Enroller(SETTINGS, catalog, engine, StrengthPolicy.from_settings(SETTINGS))
    request = JobRequest(prompt="Hello")
    got = {
        enroller.assign(
            tenant_id=tenant_id,
            job_id=new_id("job"),
            request=request,
            decision=route(request, catalog),
        ).arm  # type: ignore[union-attr]
        for _ in range(50)
    }
    assert got == {"c"}
