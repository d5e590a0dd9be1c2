"""Structured output and cascades through real workers: repaired, escalated, validated, billed."""

from __future__ import annotations

import json
from collections import Counter

import jsonschema
import pytest
from sqlalchemy import func, select

from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, LedgerEntry
from tests.integration.conftest import Cluster
from tests.integration.test_pipelines import run_batch, simulator_config

pytestmark = pytest.mark.integration


RECORD = {
    "type": "object",
    "properties": {
        "customer": {"type": "string"},
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
    },
    "required": ["customer", "total", "paid"],
    "additionalProperties": False,
}


def test_schema_batch_ends_all_valid_and_escalates_the_cheap_models_failures(
    cluster: Cluster,
) -> None:
    # Given the cheap fast model answers invalid JSON for 30% of inputs, the strong one never
    faults = {"models": {"gpt-4o-mini": {"invalid_json_rate": 0.3}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "record", "schema": RECORD}}
    lines = [
        {
            "prompt": f"Customer {i}: give the invoice record as JSON.",
            "tier": "fast",
            "quality": 0,
            "response_format": fmt,
            "max_tokens": 64,
        }
        for i in range(500)
    ]
    # When a batch of 500 schema-validated jobs runs, cheapest deployment first
    with simulator_config(cluster, faults):
        results = run_batch(cluster, lines)
    # Then every job succeeded with an output valid against the schema
    assert Counter(r["status"] for r in results) == {"succeeded": 500}
    for r in results:
        jsonschema.validate(json.loads(r["output"]), RECORD)
    # And about 30% escalated to the strong model, after one repair on the cheap one
    escalated = [r for r in results if r["deployment"] == "sim-gpt-4.1"]
    assert {r["deployment"] for r in results} == {"sim-gpt-4o-mini", "sim-gpt-4.1"}
    print(f"schema batch: 500 jobs, escalation_rate={len(escalated) / 500:.3f}")
    assert 0.25 <= len(escalated) / 500 <= 0.35, len(escalated)
    ids = [r["job_id"] for r in results]
    with session_scope(cluster.engine) as session:
        rows = session.execute(
            select(Attempt.job_id, Attempt.deployment, Attempt.outcome).where(
                Attempt.job_id.in_(ids)
            )
        ).all()
        billed = dict(
            session.execute(
                select(LedgerEntry.job_id, func.sum(LedgerEntry.cost_micro_usd))
                .where(LedgerEntry.job_id.in_(ids))
                .group_by(LedgerEntry.job_id)
            ).all()
        )
        ledger_rows = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.job_id.in_(ids))
        )
    by_job: dict[str, list[tuple[str, str]]] = {}
    for job_id, dep, outcome in rows:
        by_job.setdefault(job_id, []).append((dep, outcome))
    for r in escalated:  # cheap answer rejected, repair rejected, strong answer ok
        assert sorted(by_job[r["job_id"]]) == sorted(
            [("sim-gpt-4o-mini", "rejected")] * 2 + [("sim-gpt-4.1", "ok")]
        )
    # And every call was billed: one ledger row per attempt, each job's cost their sum
    assert ledger_rows == len(rows) == 500 + 2 * len(escalated)
    assert all(r["cost_micro_usd"] == billed[r["job_id"]] for r in results)


def test_cascade_escalates_refusals_to_the_stronger_model(cluster: Cluster) -> None:
    # Given the cheap model refuses exactly 30% of inputs (spread evenly), the strong one never
    faults = {"models": {"gpt-4o-mini": {"refusal_rate": 0.3, "fault_draw": "even"}}}
    lines = [
        {
            "prompt": f"Write a greeting for guest {i}.",
            "tier": "fast",
            "strategy": "cascade",
            "max_tokens": 20,
        }
        for i in range(200)
    ]
    # When 200 cascade jobs run
    with simulator_config(cluster, faults):
        results = run_batch(cluster, lines)
    # Then every job is served; exactly the refused 30% went on to the strong model
    assert Counter(r["status"] for r in results) == {"succeeded": 200}
    assert Counter(r["deployment"] for r in results) == {"sim-gpt-4o-mini": 140, "sim-gpt-4.1": 60}
    assert not any(r["output"].startswith("I'm sorry") for r in results)
    with session_scope(cluster.engine) as session:
        outcomes = Counter(
            session.execute(
                select(Attempt.deployment, Attempt.outcome).where(
                    Attempt.job_id.in_([r["job_id"] for r in results])
                )
            ).all()
        )
    assert outcomes == {
        ("sim-gpt-4o-mini", "ok"): 140,
        ("sim-gpt-4o-mini", "rejected"): 60,
        ("sim-gpt-4.1", "ok"): 60,
    }
