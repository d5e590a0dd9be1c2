"""OpenAI-compatible chat completions and model list, for the official SDKs pointed at us.

``POST /v1/chat/completions`` admits the request as an interactive job on its
tier's queue and waits for the worker's completion event (``orchestrator.events``).
With ``stream: true`` the answer is sent as server-sent ``chat.completion.chunk``
events ending with ``data: [DONE]``: a first chunk at once, comments to keep the
connection open while the job runs, then the finished answer in pieces (the
workers call providers without streaming, so the text arrives when the call
ends). Headers ``x-switchyard-job-id``, ``-tier``, ``-deployment``, ``-provider``
and ``-cost-micro-usd`` say where it went; so does the body's ``switchyard`` field.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from orchestrator.api.deps import AppState, StateDep, TenantDep
from orchestrator.api.openai_views import answer_chunks, chat_completion, facts_headers
from orchestrator.errors import JobUnfinished, NotFound, ValidationFailed
from orchestrator.events import wait_done
from orchestrator.metrics import CHAT_COMPLETIONS
from orchestrator.openai_schemas import (
    AUTO_MODEL,
    TIER_MODEL_PREFIX,
    ChatCompletion,
    ChatCompletionRequest,
    ModelList,
    ModelObject,
)
from orchestrator.schemas import JobRequest, JobStatus
from orchestrator.store import repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job
from orchestrator.tiers import ALL_TIERS

router = APIRouter(prefix="/v1", tags=["openai"])
KEEPALIVE_S = 10.0


def _models(state: AppState) -> list[ModelObject]:
    models = [ModelObject(id=AUTO_MODEL, owned_by="switchyard", tiers=list(ALL_TIERS))]
    models += [
        ModelObject(id=f"{TIER_MODEL_PREFIX}{t.value}", owned_by="switchyard", tiers=[t])
        for t in ALL_TIERS
    ]
    by_model: dict[str, ModelObject] = {}
    for dep in state.catalog.deployments:
        entry = by_model.setdefault(dep.model, ModelObject(id=dep.model, owned_by=dep.provider))
        entry.tiers = sorted(set(entry.tiers) | set(dep.tiers))
    return models + list(by_model.values())


@router.get("/models")
def list_models(state: StateDep, tenant_id: TenantDep) -> ModelList:
    """``auto``, ``tier:<name>`` and every catalog model."""
    return ModelList(data=_models(state))


@router.get("/models/{model_id:path}")
def get_model(model_id: str, state: StateDep, tenant_id: TenantDep) -> ModelObject:
    """One entry of the model list."""
    for model in _models(state):
        if model.id == model_id:
            return model
    raise NotFound(f"no model {model_id!r}")


def _job_request(body: ChatCompletionRequest) -> JobRequest:
    try:
        return body.to_job_request()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ValidationFailed(field, str(first["msg"])) from exc


def _load(state: AppState, tenant_id: str, job_id: str) -> Job:
    with session_scope(state.engine) as session:
        job = repo.get_job(session, tenant_id=tenant_id, job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job


async def _wait(state: AppState, tenant_id: str, job_id: str) -> Job:
    async def is_final() -> bool:
        job = await run_in_threadpool(_load, state, tenant_id, job_id)
        return JobStatus(job.status).final

    await wait_done(
        state.aredis,
        prefix=state.settings.redis_key_prefix,
        job_id=job_id,
        timeout_s=state.settings.chat_timeout_s,
        is_final=is_final,
    )
    return await run_in_threadpool(_load, state, tenant_id, job_id)


def _unfinished(job: Job) -> JobUnfinished:
    if JobStatus(job.status).final:
        return JobUnfinished(job.id, job.status, job.error or f"the job {job.status}")
    return JobUnfinished(job.id, job.status, f"job {job.id} still {job.status}; poll /v1/jobs")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, state: StateDep, tenant_id: TenantDep
) -> Response:
    """OpenAI's chat completions; ``model`` is ``auto``, ``tier:<name>`` or a catalog model."""
    request = _job_request(body)
    job_id = await run_in_threadpool(
        state.dispatcher.submit_job, tenant_id=tenant_id, request=request
    )
    if body.stream:
        job = await run_in_threadpool(_load, state, tenant_id, job_id)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(state, tenant_id, job, include_usage),
            media_type="text/event-stream",
            headers={**facts_headers(job), "cache-control": "no-cache"},
        )
    job = await _wait(state, tenant_id, job_id)
    if job.status != JobStatus.SUCCEEDED.value:
        CHAT_COMPLETIONS.labels("false", job.status).inc()
        raise _unfinished(job)
    CHAT_COMPLETIONS.labels("false", "succeeded").inc()
    return JSONResponse(chat_completion(job).model_dump(mode="json"), headers=facts_headers(job))


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _stream(
    state: AppState, tenant_id: str, queued: Job, include_usage: bool
) -> AsyncIterator[bytes]:
    head = {
        "id": f"chatcmpl-{queued.id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "logprobs": None,
            }
        ],
    }
    yield _sse(head)
    waiting = asyncio.ensure_future(_wait(state, tenant_id, queued.id))
    try:
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=KEEPALIVE_S)
            if not waiting.done():
                yield b": waiting for the job\n\n"
        job = waiting.result()
    finally:
        waiting.cancel()
    CHAT_COMPLETIONS.labels("true", job.status).inc()
    if job.status == JobStatus.SUCCEEDED.value:
        for piece in answer_chunks(job, include_usage=include_usage):
            yield _sse(piece)
    else:
        failure = _unfinished(job)
        error = {"message": str(failure), "type": job.status, "code": job.status, "param": None}
        yield _sse({"error": error})
    yield b"data: [DONE]\n\n"
