"""``create_app(settings)``: the FastAPI application with its routes, limits and error shape.

Every refusal has one shape, which is OpenAI's error object with Switchyard's
``field`` added: ``{"error": {"type", "message", "field", "param", "code"}}``
(``param`` repeats ``field``). 401 for a missing key, 403 for the admin API
without an admin key, 404 for an id the tenant does not own, 409 for a state
that refuses the action, 413 for a body over its limit, 422 naming the field
for bad input, 429 (with ``Retry-After``) over the tenant's rate, 402 over a
budget, 502/504 for a chat completion whose job failed or expired. Nothing leaks
a stack trace.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException

from orchestrator import __version__
from orchestrator.admission.dispatch import Dispatcher
from orchestrator.admission.loop_writes import LoopWrites
from orchestrator.api.api_metrics import API_RATE_LIMITED, ClusterCollector, HttpMetrics
from orchestrator.api.bodies import refusal
from orchestrator.api.deps import AppState
from orchestrator.api.limits import BodyLimit, TenantRateLimiter
from orchestrator.api.routes import (
    admin,
    batches,
    experiments,
    files,
    health,
    jobs,
    openai_compat,
    queues,
    sessions,
)
from orchestrator.api.routes import usage as usage_routes
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings, get_settings
from orchestrator.core.errors import (
    BudgetExceeded,
    Conflict,
    Forbidden,
    JobUnfinished,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    ValidationFailed,
)
from orchestrator.experiments.catalog_sync import sync_catalog_experiments
from orchestrator.queues.app import make_celery
from orchestrator.routing import tier_model
from orchestrator.store.db import get_engine

log = logging.getLogger(__name__)


def error_response(
    status: int,
    kind: str,
    message: str,
    field: str | None = None,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message, "param": field, "code": code or kind}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        refused = refusal(exc.errors())
        return error_response(422, "invalid_request", str(refused), refused.field)

    @app.exception_handler(TooLarge)
    async def _too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return error_response(413, "request_too_large", str(exc), exc.field)

    @app.exception_handler(ValidationFailed)
    async def _refused(_: Request, exc: ValidationFailed) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc), exc.field)

    @app.exception_handler(NotFound)
    async def _missing(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return error_response(401, "unauthorized", str(exc), code="invalid_api_key")

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(RateLimited)
    async def _limited(_: Request, exc: RateLimited) -> JSONResponse:
        API_RATE_LIMITED.inc()
        retry = {"retry-after": str(max(1, math.ceil(exc.retry_after_s)))}
        return error_response(
            429, "rate_limited", str(exc), code="rate_limit_exceeded", headers=retry
        )

    @app.exception_handler(BudgetExceeded)
    async def _over_budget(_: Request, exc: BudgetExceeded) -> JSONResponse:
        field = f"budget.{exc.period}"
        return error_response(402, "budget_exceeded", str(exc), field, code="budget_exceeded")

    @app.exception_handler(JobUnfinished)
    async def _unfinished(_: Request, exc: JobUnfinished) -> JSONResponse:
        headers = {"x-switchyard-job-id": exc.job_id}
        return error_response(exc.http_status, exc.status, str(exc), headers=headers)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        cause = exc.__cause__  # raised while FastAPI read the body (orchestrator.api.bodies)
        if isinstance(cause, TooLarge):
            return error_response(413, "request_too_large", str(cause), cause.field)
        if isinstance(cause, ValidationFailed):
            return error_response(422, "invalid_request", str(cause), cause.field)
        kind = "not_found" if exc.status_code == 404 else "http_error"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, kind, str(exc.detail), headers=headers)

    @app.exception_handler(RecursionError)
    async def _too_nested(_: Request, exc: RecursionError) -> JSONResponse:
        # json_body bounds nesting before anything recurses; this is the backstop
        log.warning("a request recursed too deep; refused")
        return error_response(422, "invalid_request", "body: nested too deep", "body")

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s in a request", type(exc).__name__)
        return error_response(500, "internal_error", "internal error; see the API log")


def _state(settings: Settings) -> AppState:
    catalog = load_catalog(settings)
    engine = get_engine(settings.effective_database_url)
    dispatcher = Dispatcher(settings, catalog, engine, make_celery(settings))
    url = settings.effective_redis_url
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    aclient = aioredis.Redis.from_url(url, socket_connect_timeout=2, max_connections=2000)
    # admission on the event loop (opened by the lifespan): the broker is this Redis
    dispatcher.loop_writes = LoopWrites(settings.effective_database_url, dispatcher.celery, aclient)
    limiter = TenantRateLimiter(
        aclient,
        prefix=settings.redis_key_prefix,
        default_rpm=settings.tenant_rate_limit_rpm,
        burst=settings.tenant_rate_limit_burst,
    )
    return AppState(settings, catalog, engine, dispatcher, client, aclient, limiter)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    state = _state(settings)
    sync_catalog_experiments(state.engine, state.catalog, settings)  # EXPERIMENTS.md
    if settings.router_tier_classifier == "model":  # ROUTING.md: load it now, not on a job
        tier_model.current(settings.router_model_path)  # a bad model file stops start-up
    cluster = CollectorRegistry(auto_describe=True)
    cluster.register(ClusterCollector(state.redis, settings.redis_key_prefix, state.engine))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # What startup built lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall requests for milliseconds.
        writes = state.dispatcher.loop_writes
        if writes is not None:
            await writes.open()
        gc.collect()
        gc.freeze()
        yield
        if writes is not None:
            await writes.close()
        await state.aredis.aclose()
        state.redis.close()

    app = FastAPI(title="Switchyard", version=__version__, lifespan=lifespan)
    app.state.switchyard = state
    _install_error_handlers(app)
    for module in (openai_compat, health, jobs, batches, files, queues, admin):  # busiest first
        app.include_router(module.router)
    app.include_router(admin.account)
    app.include_router(usage_routes.router)
    app.include_router(usage_routes.admin)
    app.include_router(experiments.router)
    app.include_router(experiments.feedback)
    app.include_router(sessions.router)  # CONTEXT.md

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body = generate_latest(REGISTRY) + generate_latest(cluster)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(
        BodyLimit, max_bytes=settings.max_request_bytes, max_upload_bytes=settings.max_file_bytes
    )
    app.add_middleware(HttpMetrics)
    return app
