"""Single jobs: submit one, read one."""

from __future__ import annotations

from fastapi import APIRouter, status

from orchestrator.api.deps import SessionDep, StateDep, TenantDep
from orchestrator.api.views import job_view
from orchestrator.errors import NotFound
from orchestrator.schemas import JobRequest, JobView
from orchestrator.store import repo
from orchestrator.store.db import session_scope

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def submit_job(body: JobRequest, state: StateDep, tenant_id: TenantDep) -> JobView:
    """Classify a job, queue it on its tier, and return it (status ``queued``)."""
    job_id = state.dispatcher.submit_job(tenant_id=tenant_id, request=body)
    with session_scope(state.engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        assert job is not None
        return job_view(job)


@router.get("/{job_id}")
def get_job(job_id: str, session: SessionDep, tenant_id: TenantDep) -> JobView:
    """One job of the caller's tenant, with its result once final."""
    job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job_view(job)
