"""Task bodies; thin on purpose: the logic lives in ``workers.execute``.

``acks_late`` with ``reject_on_worker_lost``: the message is acknowledged only
once the delivery has been written down, so a worker that dies mid-job leaves it
to be delivered again (the database lease makes that harmless). A deferred job
comes back by a countdown message that ``Runtime`` sends itself, or by the
reconciler; Celery's own retry machinery is not used.
"""

from __future__ import annotations

from celery import Task

from orchestrator.queues import EXECUTE_JOB
from workers.app import app
from workers.budget_settle import settler
from workers.events import reporter
from workers.experiments import experiment_hook
from workers.runtime import runtime


@app.task(  # type: ignore[untyped-decorator]
    name=EXECUTE_JOB, ignore_result=True, acks_late=True, reject_on_worker_lost=True, bind=True
)
def execute_job(self: Task, job_id: str) -> str:
    """Run one delivery of a job by id; the message carries nothing else."""
    outcome = runtime().execute(job_id)
    tier = (self.request.delivery_info or {}).get("routing_key") or "unknown"
    reporter().report(job_id, outcome, tier=str(tier))  # first: a waiting client wakes now
    claimed = runtime().claimed(job_id)
    tenant_id = claimed.tenant_id if claimed is not None else None
    settler(runtime()).settle(job_id, outcome, tenant_id=tenant_id)  # budget -> real cost
    experiment_hook().after(job_id, outcome, claimed=claimed)  # guardrail, judge
    return outcome.value
