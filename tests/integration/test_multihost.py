"""A multi-host rehearsal on one machine: two hosts' worth of workers, one stopped mid-batch.

Each "host" is a group of worker processes, one per tier, started with the worker
commands of the Kubernetes base (``switchyard worker --tier T --concurrency N``)
plus ``--hostname``, as pods on two nodes would be. Both share one broker, one
database (a Postgres server or SQLite file of their own, and a Redis key prefix) and the
reconciler, which publishes again the jobs a guard handed back until later. The
first group gets SIGTERM while the batch is running: Celery's warm shutdown must
finish what it runs and hand back what it prefetched, and the second group must
finish the rest, each job exactly once.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, func, select

from loadtests._services import PrivatePostgres, has_postgres_server
from orchestrator.cluster.bootstrap import ensure_tenant_key
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.queues.app import make_celery
from orchestrator.store import migrate
from orchestrator.store.db import dispose_engines, get_engine, session_scope
from orchestrator.store.models import Attempt, Job, LedgerEntry, as_utc
from tests.conftest import free_port, private_database
from tests.integration.conftest import settings_env
from tests.integration.test_pipeline import mixed_jobs
from tests.unit.deploy_manifests import K8S_BASE, containers, kustomize, of_kind

pytestmark = pytest.mark.integration

JOBS = 800
SIMULATOR_LATENCY_MS = 1500
SIMULATOR_JITTER_MS = 500  # spreads the finishes, so the database sees no thundering herd
HOSTS = ("host-a", "host-b")


def manifest_worker_commands() -> list[list[str]]:
    """``switchyard worker ...`` of every tier Deployment in the Kubernetes base."""
    args = [c["args"] for d in of_kind(kustomize(K8S_BASE), "Deployment") for c in containers(d)]
    commands = [a for a in args if a[:2] == ["switchyard", "worker"] and "--lane" not in a]
    assert len(commands) == 4
    return commands


@dataclass
class Rehearsal:
    """Two groups of worker processes on one broker and database, and an API to submit to."""

    settings: Settings
    engine: Engine
    api_url: str
    api_key: str
    groups: dict[str, list[subprocess.Popen[bytes]]]


@pytest.fixture
def own_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database only this rehearsal uses, so no other test's workers touch its jobs.

    On Postgres, a server of its own: eight worker processes at the base's concurrency
    may open several hundred connections in a burst of finishes (deploy/README.md sizes
    ``max_connections`` for that), more than the shared server's default 100 leaves
    beside the session's cluster; a refused connection leaves a job's write retrying
    past the warm shutdown the test waits for. Without the server binaries (``initdb``,
    ``pg_ctl``) it takes a schema on the shared server, as before.
    """
    if not os.environ.get("SWITCHYARD_TEST_DATABASE_URL") or not has_postgres_server():
        with private_database(tmp_path_factory) as url:
            yield url
        return
    server = PrivatePostgres()  # max_connections 400
    try:
        server.start()
        migrate.upgrade(server.url)
        yield server.url
    finally:
        dispose_engines(server.url)
        server.stop()


@pytest.fixture
def rehearsal(
    own_database_url: str, redis_url: str, key_prefix: str, tmp_path: Path
) -> Iterator[Rehearsal]:
    sim_port = free_port()
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=own_database_url,
        redis_url=redis_url,
        redis_key_prefix=f"{key_prefix}mh-{secrets.token_hex(3)}:",
        simulator_url=f"http://127.0.0.1:{sim_port}/v1",
        api_port=free_port(),
    )
    engine = get_engine(own_database_url)
    api_key = ensure_tenant_key(engine, state_dir=settings.state_path, tenant="it-multihost")
    supervisor = Supervisor(env=settings_env(settings), log_dir=tmp_path / "logs")
    try:
        supervisor.spawn(
            "simulator",
            *("simulator", "--port", str(sim_port)),
            *("--latency-ms", str(SIMULATOR_LATENCY_MS), "--jitter-ms", str(SIMULATOR_JITTER_MS)),
        )
        supervisor.spawn("api", "api", "--port", str(settings.api_port))
        # as the Kubernetes base runs it: it publishes jobs a guard deferred (a rate
        # limit, an open breaker: more of them on a loaded machine) when they are due
        supervisor.spawn("reconciler", "reconciler")
        groups: dict[str, list[subprocess.Popen[bytes]]] = {}
        for host in HOSTS:
            groups[host] = [
                supervisor.spawn(f"{host}-{cmd[3]}", *cmd[1:], "--hostname", host)
                for cmd in manifest_worker_commands()
            ]
        api_url = f"http://127.0.0.1:{settings.api_port}"
        supervisor.wait_http(f"http://127.0.0.1:{sim_port}/healthz")
        supervisor.wait_http(f"{api_url}/readyz")
        yield Rehearsal(settings, engine, api_url, api_key, groups)
    finally:
        supervisor.stop(timeout_s=60)
        if os.environ.get("SWITCHYARD_TEST_SHOW_LOGS"):
            for log in sorted((tmp_path / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-4000:]}")


def wait_for_nodes(settings: Settings, hosts: tuple[str, ...], per_host: int) -> list[str]:
    """Ping the workers over the broker until every group has all its nodes up."""
    control = make_celery(settings).control
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        nodes = [name for reply in control.ping(timeout=1.0) for name in reply]
        by_host = Counter(name.rsplit("@", 1)[1] for name in nodes)
        if all(by_host[h] == per_host for h in hosts):
            return nodes
    raise TimeoutError(f"workers not all up: {nodes}")


def count_succeeded(engine: Engine, batch_id: str) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).where(Job.batch_id == batch_id, Job.status == "succeeded")
        return int(session.scalar(query) or 0)


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    state: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state()}"
        time.sleep(0.05)


def batch_state(settings: Settings, engine: Engine, batch_id: str) -> dict[str, object]:
    """Jobs of the batch by status and tier, a few waiting ones with their attempts, and
    the size of each of the broker's lists, hashes and sorted sets."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(Job.status, Job.tier, func.count())
            .where(Job.batch_id == batch_id)
            .group_by(Job.status, Job.tier)
        ).all()
        waiting = session.execute(
            select(Job.id, Job.lease_owner, Job.deliveries, Job.attempts, Job.next_attempt_at)
            .where(Job.batch_id == batch_id, Job.status == "queued")
            .limit(5)
        ).all()
        attempts = session.execute(
            select(Attempt.job_id, Attempt.outcome, Attempt.http_status, Attempt.error).where(
                Attempt.job_id.in_([w.id for w in waiting])
            )
        ).all()
    state: dict[str, object] = {f"{status}/{tier}": int(n) for status, tier, n in rows}
    state["waiting"] = [tuple(map(str, w)) for w in waiting]
    state["attempts"] = [tuple(map(str, a)) for a in attempts]
    broker = redis.Redis.from_url(settings.effective_redis_url)
    sizes = {b"list": broker.llen, b"hash": broker.hlen, b"zset": broker.zcard}
    for key in broker.scan_iter(f"{settings.redis_key_prefix}*"):
        size = sizes.get(broker.type(key))
        if size is not None:
            state[key.decode()] = int(size(key))
    return state


def test_sigterm_to_one_host_mid_batch_loses_no_job(rehearsal: Rehearsal) -> None:
    r = rehearsal
    # Given two hosts' worth of tier workers on one broker and database
    nodes = wait_for_nodes(r.settings, HOSTS, per_host=4)
    assert {n.rsplit("@", 1)[1] for n in nodes} == set(HOSTS)
    # And a batch of mixed jobs on every tier, each call taking 1-2 s at the provider
    headers = {"Authorization": f"Bearer {r.api_key}"}
    response = httpx.post(
        f"{r.api_url}/v1/batches", json=mixed_jobs(JOBS), headers=headers, timeout=60
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]

    # When the first host gets SIGTERM while the batch runs
    wait_until(lambda: count_succeeded(r.engine, batch_id) >= JOBS // 10, 120, "10% done")
    sigterm_at = datetime.now(UTC)
    for proc in r.groups["host-a"]:
        proc.send_signal(signal.SIGTERM)
    done_at_sigterm = count_succeeded(r.engine, batch_id)

    # Then its workers stop cleanly, after a warm shutdown
    for proc in r.groups["host-a"]:
        assert proc.wait(timeout=120) == 0
    # And the other host finishes the batch
    wait_until(
        lambda: count_succeeded(r.engine, batch_id) == JOBS,
        180,
        "every job succeeded",
        lambda: batch_state(r.settings, r.engine, batch_id),
    )

    with session_scope(r.engine) as session:
        jobs = session.execute(
            select(Job.id, Job.status, Job.lease_owner, Job.finished_at).where(
                Job.batch_id == batch_id
            )
        ).all()
        succeeded_calls = Counter(
            session.scalars(
                select(Attempt.job_id).where(
                    Attempt.job_id.in_([j.id for j in jobs]), Attempt.outcome == "ok"
                )
            )
        )
        ledger = Counter(
            session.scalars(
                select(LedgerEntry.job_id).where(LedgerEntry.job_id.in_([j.id for j in jobs]))
            )
        )
    # And every job succeeded exactly once: one successful provider call and one ledger
    # row each (a call that failed, say a reset connection, is retried and not billed)
    assert done_at_sigterm < JOBS, "the batch was over before the SIGTERM"
    assert Counter(j.status for j in jobs) == {"succeeded": JOBS}
    assert set(succeeded_calls.values()) == {1} and len(succeeded_calls) == JOBS
    assert set(ledger.values()) == {1} and len(ledger) == JOBS
    # And the stopped host finished the jobs it was running after its SIGTERM, and the
    # other host did the rest, including what the stopped host had prefetched
    pids = {host: {str(p.pid) for p in procs} for host, procs in r.groups.items()}

    def host_of(owner: str | None) -> str:
        pid = (owner or "").split(":")[1]
        return next(h for h, ps in pids.items() if pid in ps)

    after = Counter(host_of(j.lease_owner) for j in jobs if as_utc(j.finished_at) > sigterm_at)
    assert after["host-a"] > 0 and after["host-b"] > 0, after
