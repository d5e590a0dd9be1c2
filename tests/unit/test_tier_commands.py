"""`switchyard route train` and `eval tiers --model`: retraining on a user's own prompts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.core.config import get_settings
from orchestrator.core.schemas import JobRequest
from orchestrator.routing import tier_model

runner = CliRunner()
ROWS = [
    {"prompt": "Write a Python function that reverses a linked list.", "tier": "code"},
    {"prompt": "Fix this: TypeError: 'NoneType' object is not subscriptable", "tier": "code"},
    {"prompt": "Write a SQL query that counts orders per customer.", "tier": "code"},
    {"prompt": "Solve for x: 2x + 7 = 19", "tier": "reasoning"},
    {"prompt": "What is the probability of rolling two sixes with two dice?", "tier": "reasoning"},
    {"prompt": "Prove that there are infinitely many primes.", "tier": "reasoning"},
    {"prompt": "Write a short poem about the sea.", "tier": "fast"},
    {"prompt": "What is the capital of Australia?", "tier": "fast"},
    {"prompt": "Draft a polite email declining a meeting.", "tier": "fast"},
    {"prompt": "A photo of my cat", "tier": "vision"},
]


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_route_explains_the_tier_with_probabilities_and_reasons() -> None:
    # When an operator asks why a prompt goes where it goes
    found = json.loads(invoke("route", "--json", "Write a Go function that parses a CSV line"))
    tier = found["routing"][0]
    # Then the tier step names the learned model, every tier's probability, and why
    assert tier["step"] == "tier" and tier["scorer"] == "tier-model"
    assert set(tier["probabilities"]) == {"fast", "reasoning", "code"}
    assert tier["score"] == tier["probabilities"][tier["choice"]]
    assert tier["reasons"][0].startswith("P ") and " over " in tier["reasons"][1]
    # And the text form says the same
    assert "tier-model score" in invoke("route", "Write a Go function that parses a CSV line")


def test_train_writes_a_model_that_eval_compares_and_the_settings_load(
    labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    # Given a user's labelled prompts (one vision row, which rules decide)
    out = tmp_path / "model.json"
    # When a model is trained on them alone
    args = ("route", "train", "--data", str(labelled), "--no-corpus", "--out", str(out))
    summary = json.loads(invoke(*args, "--json"))
    # Then the file is written; the vision row is skipped and counted
    assert out.is_file() and summary["skipped"] == {"tier vision": 1}
    assert sum(summary["rows"].values()) + (summary["held_out"] or {}).get("n", 0) == 9
    # And eval tiers compares it with the rules on the same file, keeping its keys
    found = json.loads(
        invoke("eval", "tiers", "--data", str(labelled), "--model", str(out),
               "--classifier", "rules", "--json")
    )  # fmt: skip
    assert found["classifier"] == str(out) and {"accuracy", "macro_f1"} <= set(found)
    assert set(found["compared"]) == {str(out), "rules"}
    # And SWITCHYARD_ROUTER_MODEL_PATH makes it the model routing uses
    monkeypatch.setenv("SWITCHYARD_ROUTER_MODEL_PATH", str(out))
    get_settings.cache_clear()
    assert tier_model.current().origin == str(out)


def test_a_broken_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}', encoding="utf-8")
    result = runner.invoke(app, ["eval", "tiers", "--data", str(bad), "--model", str(bad)])
    assert result.exit_code != 0


def test_train_from_jobs_uses_explicit_tiers_and_well_scored_answers(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_settings: None
) -> None:
    from orchestrator.experiments.records import add_feedback
    from orchestrator.store import repo
    from orchestrator.store.db import get_engine, session_scope
    from orchestrator.store.models import new_id, utcnow

    # Given a tenant's jobs: two with an explicit tier, one answered well, one badly
    tenant = f"train-{new_id('t')}"
    jobs = [
        (JobRequest(prompt="Refactor this class into smaller methods", tier="code"), "code", None),
        (JobRequest(prompt="Integrate x e^x dx", tier="reasoning"), "reasoning", None),
        (JobRequest(prompt="Write a limerick about tea"), "fast", 0.9),
        (JobRequest(prompt="Is 91 prime?"), "fast", 0.1),
    ]
    with session_scope(get_engine(database_url)) as session:
        owner = repo.create_tenant(session, name=tenant)
        for request, tier, score in jobs:
            job_id = new_id("job")
            row: dict[str, Any] = {"id": job_id, "tenant_id": owner.id, "tier": tier}
            row |= {"status": "succeeded", "request": request.model_dump(mode="json")}
            row["created_at"] = utcnow()
            repo.insert_jobs(session, rows=[row])
            if score is not None:
                session.flush()
                add_feedback(session, tenant_id=owner.id, job_id=job_id, score=score)
    monkeypatch.setenv("SWITCHYARD_DATABASE_URL", database_url)
    get_settings.cache_clear()
    # When a model is trained from those jobs (no corpus, no file)
    out = tmp_path / "jobs.json"
    args = ("route", "train", "--from-jobs", "--tenant", tenant, "--no-corpus", "--out", str(out))
    summary = json.loads(invoke(*args, "--json"))
    # Then the explicit and the well-scored jobs are its rows; the badly scored one is not
    assert sum(summary["rows"].values()) + (summary["held_out"] or {}).get("n", 0) == 3
    assert summary["skipped"] == {"low feedback score (right tier unknown)": 1}


def test_the_api_loads_the_model_file_at_start_up_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.api.app import create_app
    from orchestrator.core.config import Settings
    from orchestrator.core.errors import ConfigError

    # Given settings naming a model file that is not a tier model
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "not a tier model"}', encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    # When the API is built, Then it refuses to start, naming the file
    with pytest.raises(ConfigError, match=r"bad\.json"):
        create_app(Settings(database_url=url, state_dir=tmp_path, router_model_path=bad))
    # And with the shipped model it starts with the model already loaded, before any job
    monkeypatch.setattr(tier_model, "_models", {})
    create_app(Settings(database_url=url, state_dir=tmp_path))
    assert list(tier_model._models) == [""]
