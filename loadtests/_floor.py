"""The floor under ``switchyard bench overhead --floor``: the least the mandated stack adds.

What any implementation of DESIGN.md's path must do for one chat completion, and
nothing else, on the same libraries, services and machine as Switchyard in the
same run:

    API (FastAPI on uvicorn)   INSERT the job (its prompt) into Postgres
                               publish its id with Celery (``make_celery``: Switchyard's
                               app, transport and delivery settings)
                               BLPOP its completion event
    worker (Celery, threads)   claim: UPDATE ... WHERE status = 'queued' RETURNING the prompt
                               POST it to the simulator (httpx, a kept-alive client a thread)
                               LPUSH the answer as the completion event
                               UPDATE the job with its answer (after the event: the most
                               lenient order, as no reply waits for that write)

``SWITCHYARD_FLOOR_ANSWER_FIRST=1`` (``floor_durable`` in the bench) writes the answer
before the event instead, as a design must that never tells a client of an answer it
has not recorded (Switchyard's answer and ledger row commit before its event).

Raw psycopg statements on a four-column table; no authentication, routing, rate
limits, breakers, ledger, metrics or ORM. ``SWITCHYARD_FLOOR_DB=0`` drops the
database altogether: below the design (Postgres is where a job lives), it shows
what the web server and the queue alone add.

``floor_processes`` starts one worker and one API process (``python -m celery
-A loadtests._floor worker``, ``python -m uvicorn loadtests._floor:api``) under the
``switchyard up`` supervisor (``orchestrator.cluster.supervisor``).

The batch floor (``switchyard bench pipeline --floor``, issue 24) is the same for a
batch of jobs, grouped as Switchyard groups them:

    bench process              INSERT the jobs 1,000 to a statement, and after each
                               statement publish their ids 16 to a Celery message
                               (``publish_batch``: kombu's pipelined ``Producer.batch``)
    worker (``run_many``)      claim a message's jobs in one UPDATE ... RETURNING,
                               POST each to the simulator, write every answer in one
                               UPDATE, count them done (one Redis INCRBY)

``floor_workers`` starts its worker processes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import Response

from loadtests._services import free_port, libpq_url
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Priority
from orchestrator.queues.app import PRIORITY_VALUE, make_celery

QUEUE = os.environ.get("SWITCHYARD_FLOOR_QUEUE", "floor-bench")  # one per floor run
TASK = "floor.run"
BATCH_TASK = "floor.run_many"
BATCH = PRIORITY_VALUE[Priority.BATCH]
MESSAGE_JOBS = 16  # ids per batch message, as SWITCHYARD_BATCH_MESSAGE_JOBS
INSERT_ROWS = 1000
INTERACTIVE = PRIORITY_VALUE[Priority.INTERACTIVE]  # the top step, as a chat completion rides
DB_URL = os.environ.get("SWITCHYARD_FLOOR_DATABASE_URL", "")
REDIS_URL = os.environ.get("SWITCHYARD_FLOOR_REDIS_URL", "redis://127.0.0.1:6379/15")
SIM_URL = os.environ.get("SWITCHYARD_FLOOR_SIMULATOR_URL", "")
WITH_DB = os.environ.get("SWITCHYARD_FLOOR_DB", "1") == "1"
ANSWER_FIRST = WITH_DB and os.environ.get("SWITCHYARD_FLOOR_ANSWER_FIRST", "0") == "1"
API_CONNECTIONS = 8
TABLE = (
    "CREATE TABLE IF NOT EXISTS floor_jobs (id text PRIMARY KEY, status text NOT NULL,"
    " prompt text NOT NULL, answer text)"
)

# Switchyard's own Celery app and delivery settings, on the floor's broker and queue
app = make_celery(Settings(redis_url=REDIS_URL, redis_key_prefix=""))


def _done_key(job_id: str) -> str:
    return f"floor:done:{job_id}"


def done_count_key(queue: str) -> str:
    """How many jobs the batch floor on ``queue`` has ended (one Redis counter)."""
    return f"floor:done-count:{queue}"


class _ThreadState(threading.local):
    db: psycopg.Connection[Any] | None = None
    http: httpx.Client | None = None


_state = _ThreadState()
_events = redis.Redis.from_url(REDIS_URL)


def _db() -> psycopg.Connection[Any]:
    if _state.db is None:
        _state.db = psycopg.connect(DB_URL, autocommit=True)
    return _state.db


def _call(prompt: str) -> bytes:
    """One chat completion from the simulator, on this thread's kept-alive client."""
    if _state.http is None:
        _state.http = httpx.Client(timeout=30)
    messages = [{"role": "user", "content": prompt}]
    body = {"model": "bench-fast", "messages": messages, "max_tokens": 8}
    headers = {"Authorization": "Bearer sim-key"}
    return _state.http.post(f"{SIM_URL}/chat/completions", json=body, headers=headers).content


@app.task(name=TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def run(job_id: str, prompt: str | None = None) -> None:
    """Claim, call, tell, write (the prompt travels only when there is no database)."""
    if WITH_DB:
        claim = "UPDATE floor_jobs SET status = 'running' WHERE id = %s AND status = 'queued'"
        row = _db().execute(f"{claim} RETURNING prompt", (job_id,)).fetchone()
        if row is None:
            return
        prompt = row[0]
    answer = _call(str(prompt))
    if ANSWER_FIRST:
        _write(job_id, answer)
    with _events.pipeline(transaction=False) as pipe:
        pipe.lpush(_done_key(job_id), answer)
        pipe.expire(_done_key(job_id), 60)
        pipe.execute()
    if WITH_DB and not ANSWER_FIRST:
        _write(job_id, answer)


def _write(job_id: str, answer: bytes) -> None:
    write = "UPDATE floor_jobs SET status = 'succeeded', answer = %s WHERE id = %s"
    _db().execute(f"{write} AND status = 'running'", (answer.decode(), job_id))


@app.task(name=BATCH_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def run_many(job_ids: list[str]) -> None:
    """A batch message: one claim for its jobs, a call each, one write for every answer."""
    claim = "UPDATE floor_jobs SET status = 'running' WHERE id = ANY(%s) AND status = 'queued'"
    claimed = _db().execute(f"{claim} RETURNING id, prompt", (job_ids,)).fetchall()
    answers = [_call(str(prompt)).decode() for _, prompt in claimed]
    write = (
        "UPDATE floor_jobs AS f SET status = 'succeeded', answer = a.answer"
        " FROM unnest(%s::text[], %s::text[]) AS a (id, answer)"
        " WHERE f.id = a.id AND f.status = 'running'"
    )
    _db().execute(write, ([str(row[0]) for row in claimed], answers))
    _events.incrby(done_count_key(QUEUE), len(claimed))


def publish_batch(conn: psycopg.Connection[Any], prompts: list[str], *, queue: str) -> None:
    """Insert the batch's jobs and publish their ids, as ``run_many`` messages (bench side)."""
    job_ids = [secrets.token_hex(12) for _ in prompts]
    insert = (
        "INSERT INTO floor_jobs (id, status, prompt)"
        " SELECT id, 'queued', prompt FROM unnest(%s::text[], %s::text[]) AS j (id, prompt)"
    )
    task = app.signature(BATCH_TASK)
    for start in range(0, len(job_ids), INSERT_ROWS):
        ids = job_ids[start : start + INSERT_ROWS]
        conn.execute(insert, (ids, prompts[start : start + INSERT_ROWS]))
        with app.producer_or_acquire() as producer, producer.batch(max_size=INSERT_ROWS):
            for first in range(0, len(ids), MESSAGE_JOBS):
                message = ids[first : first + MESSAGE_JOBS]
                task.apply_async(args=[message], queue=queue, priority=BATCH, producer=producer)


class _Pool:
    """A handful of async connections, each lent to one request at a time."""

    def __init__(self) -> None:
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(API_CONNECTIONS):
            self.idle.put_nowait(await psycopg.AsyncConnection.connect(DB_URL, autocommit=True))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        conn = await self.idle.get()
        try:
            yield conn
        finally:
            self.idle.put_nowait(conn)


_pool = _Pool()
_waiter: aioredis.Redis = aioredis.Redis.from_url(REDIS_URL)


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if WITH_DB:
        await _pool.open()
        async with _pool.connection() as conn:
            await conn.execute(TABLE)
    yield


api = FastAPI(lifespan=_lifespan)


@api.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@api.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    prompt = str((await request.json())["messages"][-1]["content"])
    job_id = secrets.token_hex(12)
    if WITH_DB:
        async with _pool.connection() as conn:
            insert = "INSERT INTO floor_jobs (id, status, prompt) VALUES (%s, 'queued', %s)"
            await conn.execute(insert, (job_id, prompt))
        run.apply_async((job_id,), queue=QUEUE, priority=INTERACTIVE)
    else:
        run.apply_async((job_id, prompt), queue=QUEUE, priority=INTERACTIVE)
    popped = await _waiter.blpop([_done_key(job_id)], timeout=30)
    if popped is None:
        return Response(status_code=504)
    return Response(popped[1], media_type="application/json")


@dataclass(frozen=True)
class Floor:
    """A running floor: its processes' ids, the queue its workers consume, and its API's
    base URL (none for the batch floor's workers alone)."""

    pids: dict[str, int]
    queue: str
    url: str = ""


@contextmanager
def floor_processes(
    *,
    database_url: str,
    redis_url: str,
    simulator_url: str,
    log_dir: Path,
    with_db: bool,
    answer_first: bool = False,
) -> Iterator[Floor]:
    """A floor worker (32 threads) and API, stopped on exit."""
    env = _env(database_url, redis_url, simulator_url, with_db=with_db)
    env["SWITCHYARD_FLOOR_ANSWER_FIRST"] = "1" if answer_first else "0"
    port = free_port()
    env["SWITCHYARD_FLOOR_QUEUE"] = queue = f"floor-bench-{port}"
    server = [sys.executable, "-m", "uvicorn", "loadtests._floor:api", "--port", str(port)]
    server += ["--log-level", "warning"]
    supervisor = Supervisor(env=env, log_dir=log_dir)
    try:
        worker = _worker_command(queue, f"floor{port}", threads=32)
        pids = {"floor-worker": supervisor.run("floor-worker", *worker).pid}
        pids["floor-api"] = supervisor.run("floor-api", *server).pid
        url = f"http://127.0.0.1:{port}"
        supervisor.wait_http(f"{url}/health", timeout_s=30.0)
        yield Floor(pids, queue, url)
    finally:
        supervisor.stop()


@contextmanager
def floor_workers(
    *,
    database_url: str,
    redis_url: str,
    simulator_url: str,
    log_dir: Path,
    processes: int,
    threads: int,
) -> Iterator[Floor]:
    """``processes`` batch-floor workers of ``threads`` threads each, stopped on exit."""
    env = _env(database_url, redis_url, simulator_url, with_db=True)
    env["SWITCHYARD_FLOOR_QUEUE"] = queue = f"floor-batch-{free_port()}"
    supervisor = Supervisor(env=env, log_dir=log_dir)
    try:
        pids = {}
        for i in range(processes):
            command = _worker_command(queue, f"{queue}-{i}", threads=threads)
            pids[f"floor-worker-{i}"] = supervisor.run(f"floor-worker-{i}", *command).pid
        yield Floor(pids, queue)
    finally:
        supervisor.stop()


def _env(database_url: str, redis_url: str, simulator_url: str, *, with_db: bool) -> dict[str, str]:
    return {
        "SWITCHYARD_FLOOR_DATABASE_URL": libpq_url(database_url),
        "SWITCHYARD_FLOOR_REDIS_URL": redis_url,
        "SWITCHYARD_FLOOR_SIMULATOR_URL": simulator_url,
        "SWITCHYARD_FLOOR_DB": "1" if with_db else "0",
    }


def _worker_command(queue: str, name: str, *, threads: int) -> list[str]:
    worker = [sys.executable, "-m", "celery", "-A", "loadtests._floor", "worker", "-P", "threads"]
    worker += ["-c", str(threads), "-Q", queue, "-n", f"{name}@%h", "-l", "WARNING"]
    return [*worker, "--without-gossip", "--without-mingle", "--without-heartbeat"]
