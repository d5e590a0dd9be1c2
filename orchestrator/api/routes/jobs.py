"""Single jobs: submit one, read one, cancel one, re-drive one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from orchestrator.api.bodies import JSONBodyRoute
from orchestrator.api.deps import AppState, SessionDep, StateDep, TenantDep
from orchestrator.cache.responses import with_cache_header
from orchestrator.core.errors import NotFound
from orchestrator.core.schemas import JobRequest, JobView
from orchestrator.jobs import control
from orchestrator.jobs.views import job_view
from orchestrator.store import repo
from orchestrator.store.db import session_scope

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JSONBodyRoute)


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def submit_job(
    body: JobRequest,
    state: StateDep,
    tenant_id: TenantDep,
    cache_control: Annotated[str | None, Header()] = None,
) -> JobView:
    """Classify a job, queue it on its tier, and return it (``succeeded`` on a cache hit)."""
    request = state.cache_front.resolve(tenant_id, with_cache_header(body, cache_control))
    job_id = state.cache_front.answer(tenant_id, request)
    if job_id is None:
        job_id = state.dispatcher.submit_job(tenant_id=tenant_id, request=request)
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


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, state: StateDep, tenant_id: TenantDep) -> JobView:
    """Cancel a job that is not final yet (409 if it is); a running job stops its calls."""
    control.cancel_job(state.engine, state.dispatcher.costs, tenant_id=tenant_id, job_id=job_id)
    return _current(state, tenant_id, job_id)


@router.post("/{job_id}/redrive")
def redrive_job(job_id: str, state: StateDep, tenant_id: TenantDep) -> JobView:
    """Queue a failed, expired or cancelled job again, with a fresh deadline (409 otherwise;
    402 when its budget cannot hold it, as for a new job)."""
    dispatcher = state.dispatcher
    control.redrive_job(
        state.engine,
        dispatcher.celery,
        state.settings,
        dispatcher.costs,
        tenant_id=tenant_id,
        job_id=job_id,
    )
    return _current(state, tenant_id, job_id)


def _current(state: AppState, tenant_id: str, job_id: str) -> JobView:
    with session_scope(state.engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job_view(job)
