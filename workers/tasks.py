"""Task bodies; thin on purpose: the logic lives in ``workers.execute``."""

from __future__ import annotations

from orchestrator.queues import EXECUTE_JOB
from workers.app import app
from workers.execute import runtime


@app.task(name=EXECUTE_JOB, ignore_result=True, acks_late=True)  # type: ignore[untyped-decorator]
def execute_job(job_id: str) -> str:
    """Run one job by id; the message carries nothing else."""
    return runtime().execute(job_id).value
