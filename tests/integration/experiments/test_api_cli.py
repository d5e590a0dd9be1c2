"""Experiments over HTTP and the CLI: refusals, tenant isolation, feedback, stop, judge, plot.

Runs on the same kind of private cluster as ``test_acceptance`` (its own schema,
Redis prefix, simulator, API and workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.store.db import session_scope
from orchestrator.store.models import Job
from tests.integration.experiments.cluster import CHEAP, PRICEY, Private, create, prompts, report

pytestmark = pytest.mark.integration


def test_api_refusals_isolation_feedback_and_stop(private: Private) -> None:
    key, other = private.tenant("exp-api"), private.tenant("exp-other")
    arms = [{"name": "a"}, {"name": "b", "quality": 0.9}]
    # Bad input is a 422 naming the field
    bad = private.call(
        key,
        "POST",
        "/v1/experiments",
        json={"name": "x", "arms": [{"name": "a"}, {"name": "b", "deployments": ["nope"]}]},
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "arms[1].deployments"
    bad = private.call(key, "POST", "/v1/experiments", json={"name": "x", "arms": arms[:1]})
    assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("arms")
    # A second experiment on the same tiers is a 409
    create(private, key, {"name": "api", "arms": arms})
    clash = private.call(key, "POST", "/v1/experiments", json={"name": "api2", "arms": arms})
    assert clash.status_code == 409
    # Another tenant sees none of it, and cannot score this tenant's jobs
    assert private.call(other, "GET", "/v1/experiments/api").status_code == 404
    assert private.call(other, "GET", "/v1/experiments/api/report").status_code == 404
    assert private.call(other, "GET", "/v1/experiments").json()["data"] == []
    batch = private.run_batch(key, prompts(6))
    results = private.call(key, "GET", f"/v1/batches/{batch}/results").text.splitlines()
    job_ids = [json.loads(line)["job_id"] for line in results]
    assert (
        private.call(
            other, "POST", f"/v1/jobs/{job_ids[0]}/feedback", json={"score": 1}
        ).status_code
        == 404
    )
    refused = private.call(key, "POST", f"/v1/jobs/{job_ids[0]}/feedback", json={"score": 2})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "score"
    # Feedback counts in the arm's quality
    for job_id in job_ids:
        given = private.call(key, "POST", f"/v1/jobs/{job_id}/feedback", json={"score": 0.5})
        assert given.status_code == 201 and given.json()["source"] == "user"
    found = report(private, key, "api")
    quality = {a["arm"]: a["figures"]["quality"] for a in found["arms"]}
    assert sum(q["n"] for q in quality.values()) == 6
    assert all(q["value"] in (None, 0.5) for q in quality.values())
    # Stopping ends enrolment; a second stop is a 409; the report stays
    assert private.call(key, "POST", "/v1/experiments/api/stop").json()["status"] == "stopped"
    assert private.call(key, "POST", "/v1/experiments/api/stop").status_code == 409
    job = private.call(key, "POST", "/v1/jobs", json={"prompt": "after the stop"}).json()
    assert not any(step["step"] == "experiment" for step in job["routing"])
    assert sum(a["admitted"] for a in report(private, key, "api")["arms"]) == 6


def test_judge_grades_a_share_of_answers(private: Private) -> None:
    # Given an experiment grading every answer
    key = private.tenant("exp-judge")
    create(
        private,
        key,
        {
            "name": "judged",
            "judge_share": 1.0,
            "tiers": ["fast"],
            "arms": [{"name": "a"}, {"name": "b"}],
        },
    )
    # When 8 jobs succeed
    private.run_batch(key, prompts(8))
    # Then 8 grading jobs run on the reasoning tier and their scores become feedback
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = report(private, key, "judged")
        graded = sum(a["figures"]["quality"]["n"] for a in found["arms"])
        if graded == 8:
            break
        time.sleep(0.5)
    assert graded == 8
    with session_scope(private.engine) as session:
        tiers = session.execute(
            select(Job.tier, Job.experiment_id).where(Job.custom_id.like("switchyard-judge:%"))
        ).all()
    assert len([t for t in tiers if t[0] == "reasoning"]) >= 8
    assert all(t[1] is None for t in tiers)  # grading jobs are not enrolled


def test_cli_report_prints_and_plots(private: Private, tmp_path: Path) -> None:
    key = private.tenant("exp-cli")
    env = {**os.environ, "SWITCHYARD_API_URL": private.api_url, "SWITCHYARD_API_KEY": key}
    cli = [sys.executable, "-m", "orchestrator.cli.main", "experiments"]
    made = subprocess.run(
        [
            *cli,
            "create",
            "cli-ab",
            "--tier",
            "fast",
            "--arm",
            f"cheap deployments={CHEAP}",
            "--arm",
            f"pricey deployments={PRICEY}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    private.run_batch(key, prompts(40))
    png = tmp_path / "ab.png"
    shown = subprocess.run(
        [*cli, "report", "cli-ab", "--plot", str(png)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "pricey minus cheap" in shown.stdout and "cost/job" in shown.stdout
    assert png.stat().st_size > 10_000
    listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert "cli-ab" in listed.stdout
    stopped = subprocess.run(
        [*cli, "stop", "cli-ab"], env=env, capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
