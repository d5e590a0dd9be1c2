"""A private Switchyard cluster for reliability tests and the chaos bench.

Given a database URL and a Redis URL (shared servers with a private schema and
key prefix, or private servers from ``_services``), it writes its own catalog
and simulator config, migrates the database, and starts the simulator, worker
processes, the reconciler and optionally the API, each through the
``switchyard`` CLI as an operator would. ``audit`` reads the database the way
the acceptance criteria count: lost jobs, duplicate successes, ledger mismatches.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import Engine, func, select

from orchestrator.admission.dispatch import Dispatcher
from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import FINAL_STATUSES, JobRequest
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.queues.app import make_celery
from orchestrator.store import migrate, repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry

FINAL = {s.value for s in FINAL_STATUSES}


@dataclass
class ClusterSpec:
    """What to run: the catalog's deployments, the simulator's behaviour, the processes."""

    deployments: list[dict[str, Any]]
    simulator: dict[str, Any]
    workers: int = 1
    interactive_workers: int = 0  # ``switchyard worker --lane interactive`` processes
    tiers: Sequence[str] = tuple(t.value for t in ALL_TIERS)
    concurrency: int = 8
    reconciler: bool = True
    api: bool = False
    knobs: dict[str, str] = field(default_factory=dict)


@dataclass
class Audit:
    """The database's account of a set of jobs after a run."""

    submitted: int
    by_status: dict[str, int]
    lost: int
    duplicate_successes: int
    ledger_mismatches: int
    attempts: int
    attempts_by_outcome: dict[str, int]
    ledger_rows: int


class Cluster:
    """The processes of one private cluster, and ways to feed and inspect it."""

    def __init__(
        self,
        spec: ClusterSpec,
        *,
        workdir: Path,
        database_url: str,
        redis_url: str,
        key_prefix: str | None = None,
    ) -> None:
        from loadtests._services import free_port

        self.spec = spec
        self.workdir = workdir
        self.sim_port, self.api_port = free_port(), free_port()
        self.settings = Settings(
            state_dir=workdir / "state",
            database_url=database_url,
            redis_url=redis_url,
            redis_key_prefix=f"sy-{secrets.token_hex(4)}:" if key_prefix is None else key_prefix,
            simulator_url=f"http://127.0.0.1:{self.sim_port}/v1",
            catalog_path=workdir / "catalog.yaml",
            worker_concurrency=spec.concurrency,
            **{k.lower(): v for k, v in spec.knobs.items()},  # type: ignore[arg-type]
        )
        self.supervisor = Supervisor(env=self._env(), log_dir=workdir / "logs")
        self.workers: list[subprocess.Popen[bytes]] = []
        self.engine: Engine = get_engine(database_url)
        self.api_key = ""
        self._spawned = 0

    def _env(self) -> dict[str, str]:
        s = self.settings
        env = {
            "SWITCHYARD_STATE_DIR": str(s.state_dir),
            "SWITCHYARD_DATABASE_URL": s.effective_database_url,
            "SWITCHYARD_REDIS_URL": s.effective_redis_url,
            "SWITCHYARD_REDIS_KEY_PREFIX": s.redis_key_prefix,
            "SWITCHYARD_SIMULATOR_URL": s.simulator_url,
            "SWITCHYARD_CATALOG_PATH": str(s.catalog_path),
            "SWITCHYARD_WORKER_CONCURRENCY": str(s.worker_concurrency),
        }
        env.update({f"SWITCHYARD_{k.upper()}": str(v) for k, v in self.spec.knobs.items()})
        return env

    @property
    def sim_base(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        catalog = {"deployments": self.spec.deployments}
        (self.workdir / "catalog.yaml").write_text(yaml.safe_dump(catalog))
        (self.workdir / "simulator.json").write_text(json.dumps(self.spec.simulator))
        migrate.upgrade(self.settings.effective_database_url)
        self.api_key = ensure_tenant_key(self.engine, state_dir=self.settings.state_path)
        sim_config = str(self.workdir / "simulator.json")
        self.supervisor.spawn(
            "simulator", "simulator", "--port", str(self.sim_port), "--config", sim_config
        )
        for _ in range(self.spec.workers):
            self.spawn_worker()
        for _ in range(self.spec.interactive_workers):
            self.spawn_worker("--lane", "interactive", name="interactive-worker")
        if self.spec.reconciler:
            self.supervisor.spawn("reconciler", "reconciler")
        if self.spec.api:
            self.supervisor.spawn("api", "api", "--port", str(self.api_port))
            self.supervisor.wait_http(f"{self.api_url}/readyz")
        self.supervisor.wait_http(f"{self.sim_base}/healthz")
        return self

    def stop(self) -> None:
        self.supervisor.stop()

    def spawn_worker(self, *options: str, name: str = "worker") -> subprocess.Popen[bytes]:
        self._spawned += 1
        tiers = [arg for t in self.spec.tiers for arg in ("--tier", t)]
        proc = self.supervisor.spawn(f"{name}-{self._spawned}", "worker", *tiers, *options)
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL one worker process, as an OOM kill or a lost node would."""
        proc.kill()
        proc.wait()
        self.workers.remove(proc)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        """One dispatcher (catalog, Celery app, routing policy) for every submission."""
        catalog = load_catalog(self.settings)
        return Dispatcher(self.settings, catalog, self.engine, make_celery(self.settings))

    def submit_batch(self, requests: Sequence[JobRequest]) -> str:
        """Admit the requests as one batch through the real dispatcher; the batch's id."""
        with session_scope(self.engine) as session:
            tenant = repo.tenant_for_api_key(session, api_key=self.api_key)
        assert tenant is not None
        return self.dispatcher.submit_batch(tenant_id=tenant, requests=requests)

    def submit(self, requests: Sequence[JobRequest]) -> list[str]:
        """Admit the requests as one batch through the real dispatcher; their job ids."""
        return self.batch_job_ids(self.submit_batch(requests))

    def batch_job_ids(self, batch_id: str) -> list[str]:
        with session_scope(self.engine) as session:
            query = select(Job.id).where(Job.batch_id == batch_id).order_by(Job.batch_index)
            return list(session.scalars(query))

    def statuses(self, job_ids: Sequence[str]) -> dict[str, str]:
        with session_scope(self.engine) as session:
            rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(list(job_ids))))
            return {job_id: status for job_id, status in rows}

    def wait_final(self, job_ids: Sequence[str], timeout_s: float) -> dict[str, str]:
        """Poll until every job is final or the time is up; the last statuses seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = self.statuses(job_ids)
            if all(s in FINAL for s in statuses.values()) or time.monotonic() > deadline:
                return statuses
            time.sleep(0.5)

    def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.sim_base}/_sim/stats", timeout=10).json()
        return stats

    def audit(self, job_ids: Sequence[str]) -> Audit:
        return audit(self.engine, job_ids)


def audit(engine: Engine, job_ids: Sequence[str]) -> Audit:
    """Count what the acceptance criteria care about, for these jobs."""
    ids = list(job_ids)
    with session_scope(engine) as session:
        jobs = {
            j: (s, c)
            for j, s, c in session.execute(
                select(Job.id, Job.status, Job.cost_micro_usd).where(Job.id.in_(ids))
            )
        }
        attempts = session.execute(
            select(Attempt.id, Attempt.job_id, Attempt.outcome).where(Attempt.job_id.in_(ids))
        ).all()
        ledger = session.execute(
            select(LedgerEntry.attempt_id, LedgerEntry.job_id, LedgerEntry.cost_micro_usd).where(
                LedgerEntry.job_id.in_(ids)
            )
        ).all()
        ledger_sum = dict(
            session.execute(
                select(LedgerEntry.job_id, func.sum(LedgerEntry.cost_micro_usd))
                .where(LedgerEntry.job_id.in_(ids))
                .group_by(LedgerEntry.job_id)
            ).all()
        )
    # billed: answers, answers an output check rejected (workers.checks), and provider
    # batch answers that came after their job had left the batch (workers.batch_collect)
    billed = {a_id for a_id, _, o in attempts if o in ("ok", "rejected", "superseded")}
    ok_per_job = Counter(job for _, job, outcome in attempts if outcome == "ok")
    rows_per_attempt = Counter(attempt for attempt, _, _ in ledger)
    mismatches = sum(1 for j, (_, cost) in jobs.items() if cost != int(ledger_sum.get(j) or 0))
    mismatches += sum(1 for a in billed if rows_per_attempt[a] != 1)
    mismatches += sum(1 for a in rows_per_attempt if a not in billed)
    mismatches += sum(1 for j, (s, _) in jobs.items() if s == "succeeded" and ok_per_job[j] < 1)
    statuses = Counter(s for s, _ in jobs.values())
    return Audit(
        submitted=len(ids),
        by_status=dict(statuses),
        lost=len(ids) - sum(n for s, n in statuses.items() if s in FINAL),
        duplicate_successes=sum(1 for n in ok_per_job.values() if n > 1),
        ledger_mismatches=mismatches,
        attempts=len(attempts),
        attempts_by_outcome=dict(Counter(outcome for _, _, outcome in attempts)),
        ledger_rows=len(ledger),
    )
