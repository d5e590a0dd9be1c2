"""The `route` and `eval` commands, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.tiers import Tier

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_route_text_still_works_and_shows_every_decision() -> None:
    # When the old form `switchyard route "TEXT"` is used
    output = invoke("route", "Solve 3x + 5 = 20 and explain each step")
    # Then it shows the tier step, the strength step with scorer/score/threshold, and the plan
    assert "tier: reasoning" in output
    assert "strength: " in output and "(tiered score" in output and "threshold" in output
    assert "route plan" in output


def test_route_json_carries_the_record_and_options_before_the_text() -> None:
    # When options come before the text, and JSON is asked for
    output = invoke("route", "--quality", "1", "--json", "What is the capital of Peru?")
    # Then the strength step went strong at quality 1, and the plan starts strongest
    found = json.loads(output)
    tier, strength = found["routing"]
    assert tier["choice"] == "fast"
    assert strength["choice"] == "strong" and strength["quality"] == 1.0
    strongest = max(d.strength for d in load_catalog(Settings()).for_tier(Tier.FAST))
    assert load_catalog(Settings()).get(found["plan"][0]).strength == strongest


def test_route_with_an_image_goes_to_vision() -> None:
    output = invoke("route", "Write a python function", "--image", "https://example.com/a.png")
    assert "tier: vision" in output


def test_calibrate_prints_the_threshold_for_a_strong_share() -> None:
    # When the built-in calibration is asked for a 30% strong share
    found = json.loads(invoke("route", "calibrate", "--strong-share", "0.3", "--json"))
    # Then it names the scorer and a threshold in [0, 1]
    assert found["scorer"] == "tiered" and found["strong_share"] == 0.3
    assert 0.0 < found["threshold"] < 1.0
    plain = invoke("route", "calibrate", "--strong-share", "0.3")
    assert f"{found['threshold']:.4f}" in plain


def test_calibrate_on_your_own_prompts_and_save(tmp_path: Path) -> None:
    # Given a file of prompts of growing length
    prompts = tmp_path / "traffic.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": "word " * n}) + "\n" for n in range(1, 101)))
    saved = tmp_path / "cal.json"
    # When a calibration is computed on it with the length scorer and saved
    found = json.loads(
        invoke(
            "route",
            "calibrate",
            "--strong-share",
            "0.25",
            "--scorer",
            "length",
            "--data",
            str(prompts),
            "--save",
            str(saved),
            "--json",
        )
    )
    # Then about a quarter of those prompts reach the threshold, and the file holds the table
    assert found["source"].startswith("100 prompts")
    table = json.loads(saved.read_text())
    assert table["scorer"] == "length" and len(table["quantiles"]) == 101


def outcomes_file(tmp_path: Path) -> Path:
    # Long prompts need the strong model here, so the default scorer and length beat random
    rows = []
    for i in range(40):
        long = i % 2 == 0
        text = f"question {i} " + ("with many more words in it " * 12 if long else "short")
        rows.append({"prompt": text, "weak_score": 0 if long else 1, "strong_score": 1})
    path = tmp_path / "outcomes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_router_prints_apgr_and_cpt_with_baselines(tmp_path: Path) -> None:
    # When a router evaluation runs on a JSONL file
    found = json.loads(invoke("eval", "router", "--data", str(outcomes_file(tmp_path)), "--json"))
    # Then it prints n, APGR, CPT(50%), CPT(80%) and the baselines measured in the same run
    assert found["n"] == 40 and found["scorer"] == "tiered"
    assert {"apgr", "cpt50", "cpt80"} <= set(found)
    assert set(found["scorers"]) == {"tiered", "random", "length"}
    assert found["apgr"] > found["scorers"]["random"]["apgr"]


def test_eval_router_plots_the_curve(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    args = ("eval", "router", "--data", str(outcomes_file(tmp_path)), "--plot", str(png), "--json")
    found = json.loads(invoke(*args))
    assert found["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_tiers_reports_accuracy_f1_confusion_and_the_image_check(tmp_path: Path) -> None:
    # Given three labelled prompts
    rows = [
        {"prompt": "Write a python function that reverses a list", "tier": "code"},
        {"prompt": "Prove that the square root of 2 is irrational", "tier": "reasoning"},
        {"prompt": "What is the capital of France?", "tier": "fast"},
    ]
    path = tmp_path / "tiers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # When the tier evaluation runs
    found = json.loads(invoke("eval", "tiers", "--data", str(path), "--json"))
    # Then every figure is there, and no image job went anywhere but vision
    assert found["n"] == 3 and found["accuracy"] == 1.0 and found["macro_f1"] == 1.0
    assert found["per_tier"]["code"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert found["confusion"]["reasoning"]["reasoning"] == 1
    assert found["image_check"] == {"n": 3, "not_vision": 0}


def test_route_job_shows_the_decisions_stored_with_a_job(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.core.config import get_settings
    from orchestrator.core.schemas import JobRequest
    from orchestrator.routing import route
    from orchestrator.store import repo
    from orchestrator.store.db import get_engine, session_scope
    from orchestrator.store.models import new_id, utcnow

    # Given a job stored with its routing record, as the dispatcher writes it
    request = JobRequest(prompt="Solve 3x + 5 = 20", quality=1.0)
    decision = route(request, load_catalog(Settings()))
    job_id, tenant = new_id("job"), f"cli-{new_id('t')}"
    with session_scope(get_engine(database_url)) as session:
        owner = repo.create_tenant(session, name=tenant)
        row = {
            "id": job_id,
            "tenant_id": owner.id,
            "status": "queued",
            "tier": decision.tier.value,
            "tier_reasons": list(decision.reasons),
            "plan": [d.name for d in decision.plan],
            "routing": decision.record(),
            "priority": 0,
            "request": request.model_dump(mode="json"),
            "created_at": utcnow(),
        }
        repo.insert_jobs(session, rows=[row])
    monkeypatch.setenv("SWITCHYARD_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        # When an operator asks for it with the owning tenant
        found = json.loads(invoke("route", "job", job_id, "--tenant", tenant, "--json"))
        # Then the stored decisions come back; another tenant does not see the job
        assert found["routing"] == decision.record()
        missing = runner.invoke(app, ["route", "job", job_id, "--tenant", "nobody"])
        assert missing.exit_code != 0
    finally:
        get_settings.cache_clear()
