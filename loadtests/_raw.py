"""The baseline every throughput benchmark measures against: plain Celery, no-op tasks.

A Celery app with the library's defaults on the benchmark's own broker
(``SWITCHYARD_BENCH_BROKER``), one queue, and one task that does nothing but
count itself done (one Redis ``INCR``, so the benchmark can see the end). Its
workers are started by ``raw_workers`` with the same pool, process count and
threads as Switchyard's workers in the same run:

    celery -A loadtests._raw worker -P threads -c C -Q raw-bench
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import redis
from celery import Celery

from orchestrator.cluster.supervisor import Supervisor
from orchestrator.queues.app import PRIORITY_STEPS

QUEUE = "raw-bench"
DONE_KEY = "raw-bench:done"
BROKER = os.environ.get("SWITCHYARD_BENCH_BROKER", "redis://127.0.0.1:6379/15")

LIKE_SWITCHYARD = os.environ.get("SWITCHYARD_BENCH_RAW_LIKE") == "1"

app = Celery("raw", broker=BROKER, set_as_current=False)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
if LIKE_SWITCHYARD:  # the delivery settings of orchestrator.queues.app.make_celery
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        broker_transport_options={
            "queue_order_strategy": "priority",
            "priority_steps": PRIORITY_STEPS,
        },
    )


@cache
def _counter() -> redis.Redis:
    return redis.Redis.from_url(BROKER)


@app.task(name="raw.noop")  # type: ignore[untyped-decorator]
def noop(job_id: str) -> None:
    """Nothing but a count, so the benchmark knows when every task ran."""
    _counter().incr(DONE_KEY)


def done_count(client: redis.Redis, key: str = DONE_KEY) -> int:
    return int(client.get(key) or 0)


@contextmanager
def raw_workers(
    broker_url: str, *, processes: int, threads: int, log_dir: Path, like: bool = False
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` plain Celery workers (threads pool), stopped on exit.

    ``like``: with Switchyard's delivery settings (late acks, prefetch 1, task
    events, priority lists) instead of Celery's defaults.
    """
    env = {"SWITCHYARD_BENCH_BROKER": broker_url, "SWITCHYARD_BENCH_RAW_LIKE": "1" if like else "0"}
    supervisor = Supervisor(env=env, log_dir=log_dir)
    procs = []
    for i in range(processes):
        args = [sys.executable, "-m", "celery", "-A", "loadtests._raw", "worker", "-P"]
        args += ["threads", "-c", str(threads), "-Q", QUEUE, "-n", f"raw{i}@%h", "-l", "WARNING"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        procs.append(supervisor.run(f"raw-{i}", *args))
    try:
        yield procs
    finally:
        supervisor.stop()


def publish_noops(celery: Celery, n: int, *, batched: bool) -> float:
    """Send ``n`` no-op tasks from this process; the seconds it took.

    ``batched`` sends them through kombu's ``Producer.batch`` (pipelined), the
    fastest plain-Celery way; otherwise one ``apply_async`` per task, as most code does.
    """
    task = celery.signature("raw.noop")
    started = time.perf_counter()
    if batched:
        with celery.producer_or_acquire() as producer, producer.batch(max_size=1000):
            for i in range(n):
                task.apply_async(args=[f"raw-{i}"], queue=QUEUE, producer=producer)
    else:
        for i in range(n):
            task.apply_async(args=[f"raw-{i}"], queue=QUEUE)
    return time.perf_counter() - started


def wait_count(client: redis.Redis, n: int, timeout_s: float, *, key: str = DONE_KEY) -> float:
    """Wait until the counter ``key`` (the no-ops', or another benchmark's) reaches ``n``;
    the monotonic time at which the count was seen."""
    deadline = time.monotonic() + timeout_s
    while done_count(client, key) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done_count(client, key)} of {n} counted done ({key})")
        time.sleep(0.02)
    return time.monotonic()
