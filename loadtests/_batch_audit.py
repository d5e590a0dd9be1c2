"""The provider-batch benchmark's account of a run, read from Postgres and the simulator.

    jobs(cluster, ids)        per job: status, answered calls, ledger rows, path taken
    money(catalog, jobs)      what was billed, what the same tokens cost at sync prices,
                              and the jobs whose ledger is not one row at their path's price
    provider_batches(...)     our provider batches against the simulator's: created
                              twice for one gathering, or created and never recorded

A job's path is its line's state: ``answered`` (by provider batch, billed at the
catalog's batch prices, perhaps by a later batch after a failed line or an
expired batch: ``tries``) or ``released`` (sent to the synchronous path once its
tries were used up, run at the sync prices).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from loadtests._cluster import Cluster
from orchestrator.core.catalog import Catalog
from orchestrator.core.schemas import Usage
from orchestrator.costs.pricing import cost_micro_usd
from orchestrator.store.db import session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry
from orchestrator.store.provider_batch_models import ProviderBatch, ProviderBatchLine

MICRO = 1_000_000


@dataclass(frozen=True)
class Row:
    """One ledger row of a job, with the outcome of the attempt it bills."""

    outcome: str
    deployment: str
    usage: Usage
    cost_micro_usd: int


@dataclass
class JobAccount:
    """One job: its status, its answered calls, its ledger rows and its line's state."""

    status: str
    answered: int = 0
    rows: list[Row] = field(default_factory=list)
    line: str | None = None
    tries: int = 0  # provider batches that gave its line no answer

    @property
    def by_batch(self) -> bool:
        return self.line == "answered"


def jobs(cluster: Cluster, job_ids: Sequence[str]) -> dict[str, JobAccount]:
    ids = list(job_ids)
    with session_scope(cluster.engine) as session:
        found = {
            j: JobAccount(s)
            for j, s in session.execute(select(Job.id, Job.status).where(Job.id.in_(ids)))
        }
        outcomes = session.execute(
            select(Attempt.job_id, Attempt.outcome).where(Attempt.job_id.in_(ids))
        ).all()
        ledger = session.execute(
            select(
                LedgerEntry.job_id,
                Attempt.outcome,
                LedgerEntry.deployment,
                LedgerEntry.input_tokens,
                LedgerEntry.output_tokens,
                LedgerEntry.cached_input_tokens,
                LedgerEntry.cost_micro_usd,
            )
            .join(Attempt, Attempt.id == LedgerEntry.attempt_id)
            .where(LedgerEntry.job_id.in_(ids))
        ).all()
        lines = session.execute(
            select(
                ProviderBatchLine.job_id, ProviderBatchLine.state, ProviderBatchLine.tries
            ).where(ProviderBatchLine.job_id.in_(ids))
        ).all()
    for job_id, outcome in outcomes:
        if outcome == "ok" and job_id in found:
            found[job_id].answered += 1
    for job_id, outcome, dep, tokens_in, tokens_out, cached, cost in ledger:
        usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out, cached_input_tokens=cached)
        found[job_id].rows.append(Row(outcome, dep, usage, int(cost)))
    for job_id, state, tries in lines:
        found[job_id].line, found[job_id].tries = state, tries
    return found


@dataclass
class Money:
    """Billed against synchronous prices, for the same jobs and tokens."""

    total_micro_usd: int = 0
    sync_micro_usd: int = 0
    batch_micro_usd: int = 0  # billed for lines answered by provider batch
    batch_sync_micro_usd: int = 0  # those same lines at sync prices
    mismatched: list[str] = field(default_factory=list)
    sync_by_deployment: Counter[str] = field(default_factory=Counter)
    jobs_by_deployment: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        ratio = self.total_micro_usd / self.sync_micro_usd if self.sync_micro_usd else None
        batch_sync = self.batch_sync_micro_usd
        batch = self.batch_micro_usd / batch_sync if batch_sync else None
        return {
            "total_cost_usd": round(self.total_micro_usd / MICRO, 6),
            "sync_cost_usd": round(self.sync_micro_usd / MICRO, 6),
            "ratio": round(ratio, 5) if ratio is not None else None,
            "batch_lines_ratio": round(batch, 5) if batch is not None else None,
            "ledger_mismatches": len(self.mismatched),
        }


def money(catalog: Catalog, accounts: dict[str, JobAccount]) -> Money:
    """Sum what was billed; price each job's answered tokens at sync prices; check each
    job's ledger is one row, of its answered call, at the price of the path that answered."""
    out = Money()
    for job_id, job in accounts.items():
        out.total_micro_usd += sum(r.cost_micro_usd for r in job.rows)
        ok = [r for r in job.rows if r.outcome == "ok"]
        if not ok:
            out.mismatched.append(job_id)
            continue
        dep = catalog.get(ok[0].deployment)
        sync = cost_micro_usd(dep, ok[0].usage)
        out.sync_micro_usd += sync
        out.sync_by_deployment[dep.name] += sync
        out.jobs_by_deployment[dep.name] += 1
        expected = cost_micro_usd(dep.batch_priced(), ok[0].usage) if job.by_batch else sync
        if job.by_batch:
            out.batch_micro_usd += ok[0].cost_micro_usd
            out.batch_sync_micro_usd += sync
        if len(job.rows) != 1 or ok[0].cost_micro_usd != expected:
            out.mismatched.append(job_id)
    return out


def outcome_counts(accounts: dict[str, JobAccount]) -> dict[str, Any]:
    """Jobs not succeeded exactly once, and how the rest were answered."""
    lost = [j for j, a in accounts.items() if a.status != "succeeded" or a.answered != 1]
    return {
        "succeeded": sum(1 for a in accounts.values() if a.status == "succeeded"),
        "lost": len(lost),
        "answered_by_provider_batch": sum(1 for a in accounts.values() if a.by_batch),
        "lines_rerun_sync": sum(1 for a in accounts.values() if a.line == "released"),
        "lines_sent_again_by_batch": sum(1 for a in accounts.values() if a.tries > 0),
        "lines_answered_after_a_retry": sum(
            1 for a in accounts.values() if a.by_batch and a.tries > 0
        ),
        "lines_by_state": dict(Counter(a.line or "none" for a in accounts.values())),
        "statuses": dict(Counter(a.status for a in accounts.values())),
    }


def _sim_openai_batches(cluster: Cluster) -> list[dict[str, Any]]:
    """Every batch the simulator holds in OpenAI's format, paged through its list."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"after": after} if after else {})
        page = httpx.get(f"{cluster.sim_base}/v1/batches", params=params, timeout=10).json()
        found += page.get("data") or []
        if not page.get("has_more") or not page.get("data"):
            return found
        after = page["data"][-1]["id"]


def provider_batches(cluster: Cluster) -> dict[str, Any]:
    """Ours (Postgres) against the simulator's: duplicates, expiries, states."""
    with session_scope(cluster.engine) as session:
        ours = session.execute(
            select(
                ProviderBatch.id,
                ProviderBatch.provider,
                ProviderBatch.state,
                ProviderBatch.provider_batch_id,
                ProviderBatch.provider_status,
            )
        ).all()
    recorded = [r[3] for r in ours if r[3] is not None]
    stats = cluster.sim_stats()["batches"]
    created = int(stats["total"]["created"])
    tags = Counter(
        (b.get("metadata") or {}).get("switchyard_batch") for b in _sim_openai_batches(cluster)
    )
    twice = sum(n - 1 for tag, n in tags.items() if tag is not None and n > 1)
    files = httpx.get(f"{cluster.sim_base}/v1/files", timeout=10).json().get("data") or []
    uploads = Counter(f.get("filename") for f in files if f.get("purpose") == "batch")
    unrecorded = max(0, created - len(set(recorded)))
    return {
        "duplicate_provider_batches": max(twice, unrecorded) + len(recorded) - len(set(recorded)),
        "provider_batches": len(ours),
        "provider_batches_created_at_simulator": created,
        "provider_batches_by_state": dict(Counter(r[2] for r in ours)),
        "provider_batches_by_provider": dict(Counter(r[1] for r in ours)),
        "provider_batches_expired": sum(1 for r in ours if r[4] == "expired"),
        "input_files_uploaded_twice": sum(n - 1 for n in uploads.values() if n > 1),
        "simulator_batches": stats["total"],
    }
