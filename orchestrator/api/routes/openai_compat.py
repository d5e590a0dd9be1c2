"""OpenAI-compatible chat completions and model list, for the official SDKs pointed at us.

``POST /v1/chat/completions`` admits the request as an interactive job on its
tier's queue and waits for the worker's completion event (``orchestrator.jobs.completion_events``),
which carries the answer: the row is read back only when it does not.
With ``stream: true`` the job is marked to stream: its worker calls the provider
with streaming on and publishes the text to a per-job Redis stream as it comes
(``workers.streaming``), and this route relays it as server-sent
``chat.completion.chunk`` events, token by token, ending with the finish chunk,
the usage chunk (``stream_options.include_usage``) and ``data: [DONE]``
(``orchestrator.api.chat_stream``, which also says what a fallback mid-answer
does). Headers ``x-switchyard-job-id``, ``-tier``, ``-deployment``, ``-provider``
and ``-cost-micro-usd`` say where it went (a stream's headers leave before the
deployment is known; its finish chunk carries them in ``switchyard``); so does
the body's ``switchyard`` field.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from orchestrator.api.api_metrics import CHAT_COMPLETIONS
from orchestrator.api.bodies import JSONBodyRoute, refusal, small
from orchestrator.api.chat_stream import ChatStream, load_job, unfinished
from orchestrator.api.deps import AppState, CallerDep, StateDep, TenantDep
from orchestrator.api.openai_views import chat_completion, facts_headers
from orchestrator.cache.responses import with_cache_header
from orchestrator.core.errors import NotFound
from orchestrator.core.schemas import JobRequest, JobStatus
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.jobs.completion_events import answered_job, wait_done
from orchestrator.store.models import Job
from orchestrator.wire.openai_schemas import (
    AUTO_MODEL,
    TIER_MODEL_PREFIX,
    ChatCompletion,
    ChatCompletionRequest,
    ModelList,
    ModelObject,
)

router = APIRouter(prefix="/v1", tags=["openai"], route_class=JSONBodyRoute)


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
        raise refusal(exc.errors()) from exc


async def _wait(state: AppState, tenant_id: str, job_id: str) -> Job:
    async def is_final() -> bool:
        job = await run_in_threadpool(load_job, state, tenant_id, job_id)
        return JobStatus(job.status).final

    waited = await wait_done(
        state.aredis,
        prefix=state.settings.redis_key_prefix,
        job_id=job_id,
        timeout_s=state.settings.chat_timeout_s,
        is_final=is_final,
        fresh=True,  # submitted just now: wait for its event before reading the row
    )
    answered = answered_job(waited.event, tenant_id)  # an answer's event: no read back
    if answered is not None:
        return answered
    return await run_in_threadpool(load_job, state, tenant_id, job_id)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    http: Request,
    state: StateDep,
    caller: CallerDep,
    cache_control: Annotated[str | None, Header()] = None,
) -> Response:
    """OpenAI's chat completions; ``model`` is ``auto``, ``tier:<name>`` or a catalog model.

    The tenant's rate limit is checked by ``CacheFront.lookup``, in the same Redis
    round trip as the response cache's read.
    """
    tenant_id = caller.tenant_id
    if small(http):  # a large body is converted (and its schemas checked) off the event loop
        converted = _job_request(body)
    else:
        converted = await run_in_threadpool(_job_request, body)
    request = with_cache_header(converted, cache_control)
    if body.stream:  # the worker relays the text as it comes (workers.streaming)
        request = request.model_copy(update={"stream": True})
    request, hit = await state.cache_front.lookup(state.limiter, caller, request)
    if hit is not None and not body.stream:  # a response-cache hit: answered at once
        CHAT_COMPLETIONS.labels("false", "succeeded").inc()
        answer = chat_completion(hit).model_dump(mode="json")
        return JSONResponse(answer, headers=facts_headers(hit))
    if hit is not None:
        job_id = hit.id
    elif small(http):  # admitted on the event loop when it needs no blocking read
        job_id = await state.dispatcher.asubmit_job(tenant_id=tenant_id, request=request)
    else:
        job_id = await run_in_threadpool(
            state.dispatcher.submit_job, tenant_id=tenant_id, request=request
        )
    if body.stream:
        job = await run_in_threadpool(load_job, state, tenant_id, job_id)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            ChatStream(state, tenant_id, job, include_usage).events(),
            media_type="text/event-stream",
            headers={**facts_headers(job), "cache-control": "no-cache"},
        )
    job = await _wait(state, tenant_id, job_id)
    if job.status != JobStatus.SUCCEEDED.value:
        CHAT_COMPLETIONS.labels("false", job.status).inc()
        raise unfinished(job)
    CHAT_COMPLETIONS.labels("false", "succeeded").inc()
    return JSONResponse(chat_completion(job).model_dump(mode="json"), headers=facts_headers(job))
