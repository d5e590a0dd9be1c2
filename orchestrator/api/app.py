"""``create_app(settings)``: the FastAPI application with its routes and error shapes.

Every refusal has one shape, ``{"error": {"type", "message", "field"}}``, and a
4xx status: 401 for a missing key, 404 for an id the tenant does not own, 422
naming the field for bad input. Nothing leaks a stack trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from orchestrator import __version__
from orchestrator.api.deps import AppState
from orchestrator.api.routes import batches, health, jobs, queues
from orchestrator.catalog import load_catalog
from orchestrator.config import Settings, get_settings
from orchestrator.dispatch import Dispatcher
from orchestrator.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from orchestrator.queues import make_celery
from orchestrator.store.db import get_engine


def _error(status: int, kind: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        return _error(422, "invalid_request", f"{field}: {first.get('msg')}", field)

    @app.exception_handler(ValidationFailed)
    async def _refused(_: Request, exc: ValidationFailed) -> JSONResponse:
        return _error(422, "invalid_request", str(exc), exc.field)

    @app.exception_handler(NotFound)
    async def _missing(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _error(409, "conflict", str(exc))

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return _error(401, "unauthorized", str(exc))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    catalog = load_catalog(settings)
    engine = get_engine(settings.effective_database_url)
    dispatcher = Dispatcher(settings, catalog, engine, make_celery(settings))
    app = FastAPI(title="Switchyard", version=__version__)
    app.state.switchyard = AppState(settings, catalog, engine, dispatcher)
    _install_error_handlers(app)
    for module in (health, jobs, batches, queues):
        app.include_router(module.router)
    return app
