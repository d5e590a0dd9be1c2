"""Task bodies; thin on purpose: the logic lives in ``workers.execute``.

``acks_late`` with ``reject_on_worker_lost``: the message is acknowledged only
once the delivery has been written down, so a worker that dies mid-job leaves it
to be delivered again (the database lease makes that harmless). A deferred job
comes back by a countdown message that ``Runtime`` sends itself, or by the
reconciler; Celery's own retry machinery is not used.

``advance_provider_batch`` carries a provider batch's id (issue 26): the
reconciler sends it when a batch is gathered or its step is overdue, and the
task sends itself a countdown message to poll again.

A batch message (``execute_jobs``) carries several job ids: its jobs run side by
side on the process's job threads (``workers.runtime.job_threads``), each exactly
as ``execute_job`` runs one, and the message is acknowledged when all have ended.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import nullcontext

from celery import Task

from orchestrator.core.batching import alone
from orchestrator.queues.app import EXECUTE_JOB, EXECUTE_JOBS
from orchestrator.services.provider_batch_driver import ADVANCE_PROVIDER_BATCH
from workers.app import app
from workers.batch_runtime import advancer
from workers.budget_settle import settler
from workers.completion_reporter import reporter
from workers.experiments import experiment_hook
from workers.runtime import job_threads, runtime

log = logging.getLogger(__name__)


@app.task(  # type: ignore[untyped-decorator]
    name=EXECUTE_JOB, ignore_result=True, acks_late=True, reject_on_worker_lost=True, bind=True
)
def execute_job(self: Task, job_id: str) -> str:
    """Run one delivery of a job by id; the message carries nothing else."""
    return run_job(job_id, _tier(self))


@app.task(  # type: ignore[untyped-decorator]
    name=EXECUTE_JOBS, ignore_result=True, acks_late=True, reject_on_worker_lost=True, bind=True
)
def execute_jobs(self: Task, job_ids: list[str]) -> str:
    """Run one delivery of several jobs side by side; returns how each ended, counted."""
    tier = _tier(self)
    futures = [job_threads().submit(run_job, str(job_id), tier, True) for job_id in job_ids]
    ended: Counter[str] = Counter()
    for job_id, future in zip(job_ids, futures, strict=True):
        try:
            ended[future.result()] += 1
        except Exception:  # one job's bug must not hold back the others' acknowledgement
            log.exception("job %s raised; its lease runs out and the reconciler retries it", job_id)
            ended["raised"] += 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(ended.items()))


@app.task(  # type: ignore[untyped-decorator]
    name=ADVANCE_PROVIDER_BATCH, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)
def advance_provider_batch(batch_id: str) -> str:
    """Take one provider batch a step or more along its lifecycle (``workers.batch_advance``)."""
    return advancer().advance(batch_id)


def run_job(job_id: str, tier: str, batch: bool = False) -> str:
    """One delivery of one job, then its hooks; returns how it ended.

    A batch job's claim, writes and Redis calls join those of other batch jobs at
    the same moment (``orchestrator.core.batching``); any other job's go ``alone``, so it
    never waits for, or serves, a batch of others.
    """
    with nullcontext() if batch else alone():
        return _run_job(job_id, tier)


def _run_job(job_id: str, tier: str) -> str:
    outcome = runtime().execute(job_id)
    answer = runtime().answer_event(job_id)
    reporter().report(job_id, outcome, tier=tier, answer=answer)  # first: a client waits
    claimed = runtime().claimed(job_id)
    tenant_id = claimed.tenant_id if claimed is not None else None
    settler(runtime()).settle(job_id, outcome, tenant_id=tenant_id)  # billed -> spent
    experiment_hook().after(job_id, outcome, claimed=claimed)  # guardrail, judge
    return outcome.value


def _tier(task: Task) -> str:
    return str((task.request.delivery_info or {}).get("routing_key") or "unknown")
