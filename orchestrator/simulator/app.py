"""The provider simulator: one offline server speaking OpenAI, Anthropic and Gemini.

Endpoints:
    POST /v1/chat/completions                      OpenAI chat completions
    POST /v1/messages                              Anthropic Messages
    POST /v1beta/models/{model}:generateContent    Gemini (also under /v1/models/...)
    POST /v1beta/models/{model}:streamGenerateContent?alt=sse   Gemini, streamed
    GET  /v1/models                                OpenAI list shape
    /v1/files, /v1/batches                         OpenAI Files and Batch APIs (batch_openai)
    /v1/messages/batches                           Anthropic Message Batches (batch_anthropic)
    POST /v1beta/models/{model}:batchGenerateContent, /v1beta/batches   Gemini batch mode
    GET  /healthz                                  liveness
    GET  /_sim/stats    POST /_sim/reset           what it saw and served; zero it
    GET  /_sim/config   PUT /_sim/config           the behaviour config, read or replace
    GET  /_sim/requests?model=M                    the last 20 request bodies for model M

Per-request control headers (all optional, every format):
    x-simulator-latency-ms   this request's latency, instead of the server-wide one
    x-simulator-jitter-ms    this request's jitter: latency varies by +/- this much
    x-simulator-fail         answer with an error instead: an HTTP status (400, 401,
                             403, 404, 429, 500, 503, 504, 529, any 4xx/5xx) or a
                             condition (context_length_exceeded, content_filter,
                             insufficient_quota)

Order per request: parse (a 400 in the format's shape), count it as received,
context window, rate limits (429 at once), latency, injected failure (config
rates first, then the header), answer. ``"stream": true`` (OpenAI, Anthropic)
or ``:streamGenerateContent`` answers with server-sent events in the format's
own shape, the latency spread over the tokens (``simulator.streaming``). There
is no per-request logging: the simulator is the baseline in benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.simulator import (
    anthropic_wire,
    batch_anthropic,
    batch_gemini,
    batch_openai,
    gemini_wire,
    openai_wire,
)
from orchestrator.simulator import streaming as sim_streaming
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.engine import Engine, api_key_of
from orchestrator.simulator.wire import SimError

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "o4-mini",
    "o3",
    "codestral-latest",
    "claude-sonnet-4",
    "claude-haiku-3.5",
    "gemini-2.0-flash",
    "gemini-2.5-pro",
)
GEMINI_ACTIONS = ("generateContent", "streamGenerateContent")
MALFORMED_BODY = b'{"id": "sim-malformed", "choices": [{"message": {"content": "trunc'


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _error(fmt: ModuleType, exc: SimError) -> Response:
    return _json(fmt.error_body(exc), exc.status, exc.headers)


async def _read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise SimError(400, "We could not parse the JSON body of your request.") from None


async def serve(
    engine: Engine,
    fmt: ModuleType,
    request: Request,
    path_model: str | None = None,
    *,
    stream: bool = False,
) -> Response:
    """One request through the shared pipeline, answered in ``fmt``'s wire format.

    ``stream`` (or ``"stream": true`` in the body) answers with server-sent events
    paced over the latency (``orchestrator.simulator.streaming``).
    """
    now_s = time.monotonic()
    try:
        body = await _read_json(request)
        call = fmt.parse(body, path_model)
    except SimError as exc:
        return _error(fmt, exc)
    stream = stream or body.get("stream") is True
    profile = engine.received(call, fmt.NAME, body, now_s)
    try:
        delay_s = engine.delay_s(request.headers, profile)
        key = api_key_of(request.headers, request.query_params)
        admitted = engine.admit(fmt, call, profile, key, now_s)
        injected = engine.injected(request.headers, profile)
    except SimError as exc:
        engine.failed(call.model, exc)
        return _error(fmt, exc)
    wait_s = delay_s * sim_streaming.FIRST_TOKEN_SHARE if stream else delay_s
    if wait_s > 0:
        await asyncio.sleep(wait_s)
    if injected == "malformed":
        engine.stats.failed(call.model, "malformed")
        if stream:  # a stream cut off halfway
            frames = fmt.stream_frames(call, admitted.answer, body)
            return sim_streaming.respond(frames, delay_s - wait_s, admitted.headers, cut=True)
        return Response(MALFORMED_BODY, media_type="application/json")
    if injected is not None:
        error = injected if isinstance(injected, SimError) else engine.error_for(injected)
        if error.stat == "timeout":
            await asyncio.sleep(profile.timeout_s)
        engine.failed(call.model, error)
        return _error(fmt, error)
    answer = admitted.answer
    engine.apply_cache(call, answer, writes_reported=fmt is anthropic_wire)
    engine.served(call, answer, time.monotonic())
    if stream:
        frames = fmt.stream_frames(call, answer, body)
        return sim_streaming.respond(frames, delay_s - wait_s, admitted.headers)
    return _json(fmt.render(call, answer), headers=admitted.headers)


def _model_list(models: Sequence[str]) -> dict[str, Any]:
    created = int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": created, "owned_by": "switchyard-simulator"}
            for m in models
        ],
    }


def _add_control_routes(app: FastAPI, engine: Engine) -> None:
    @app.get("/_sim/stats")
    async def stats() -> Response:
        """Requests received and served, 429s, errors by kind, tokens, peak per minute."""
        return _json(engine.stats.as_dict())

    @app.post("/_sim/reset")
    async def reset() -> Response:
        """Zero every counter and forget limiter state, cached prefixes and recent bodies.

        Provider batches and uploaded files stay (delete them through their APIs).
        """
        engine.reset()
        return _json({"status": "reset"})

    @app.get("/_sim/config")
    async def get_config() -> Response:
        """The behaviour config in force."""
        return _json(engine.config.model_dump(mode="json"))

    @app.put("/_sim/config")
    async def put_config(request: Request) -> Response:
        """Replace the behaviour config (same shape as ``--config``)."""
        try:
            engine.config = SimulatorConfig.model_validate(await _read_json(request))
        except (SimError, ValidationError) as exc:
            return _json({"error": {"message": str(exc), "type": "invalid_config"}}, 400)
        return _json(engine.config.model_dump(mode="json"))

    @app.get("/_sim/requests")
    async def recent(model: str) -> Response:
        """The last request bodies received for ``model`` (oldest first), for debugging."""
        return _json({"model": model, "requests": engine.recent_requests(model)})


def create_simulator_app(
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    *,
    config: SimulatorConfig | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
) -> FastAPI:
    """A simulator whose answers take ``latency_ms`` +/- ``jitter_ms`` plus ``config``'s latency."""
    engine = Engine(config or SimulatorConfig(), latency_ms, jitter_ms)
    app = FastAPI(title="Switchyard provider simulator", version="2")
    app.state.engine = engine
    model_list = _model_list(models)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(openai_wire, SimError(exc.status_code, str(exc.detail)))

    @app.get("/v1/models")
    async def list_models() -> Response:
        """The models this simulator advertises (it answers for any model name)."""
        return _json(model_list)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    batch_openai.add_routes(app, engine)
    batch_anthropic.add_routes(app, engine)
    batch_gemini.add_routes(app, engine)  # before the catch-all Gemini route
    _add_format_routes(app, engine)
    _add_control_routes(app, engine)
    return app


def _add_format_routes(app: FastAPI, engine: Engine) -> None:
    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions."""
        return await serve(engine, openai_wire, request)

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        """Anthropic Messages."""
        return await serve(engine, anthropic_wire, request)

    @app.post("/{version}/models/{target}")
    async def generate_content(version: str, target: str, request: Request) -> Response:
        """Gemini ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``."""
        model, _, action = target.partition(":")
        if version not in ("v1", "v1beta") or action not in GEMINI_ACTIONS:
            error = SimError(404, f"{version}/models/{target} is not served", "not_found")
            return _error(gemini_wire, error)
        stream = action == "streamGenerateContent"
        if stream and request.query_params.get("alt") != "sse":
            error = SimError(400, "the simulator streams only with alt=sse", param="alt")
            return _error(gemini_wire, error)
        return await serve(engine, gemini_wire, request, model, stream=stream)


def run_simulator(
    host: str,
    port: int,
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    config: SimulatorConfig | None = None,
) -> None:
    """Serve the simulator until interrupted (no access log: it runs under benchmarks)."""
    app = create_simulator_app(latency_ms, jitter_ms, config=config)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
