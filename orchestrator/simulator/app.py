"""The provider simulator: an offline, OpenAI-compatible chat-completions server.

Endpoints:
    POST /v1/chat/completions   OpenAI wire format, deterministic answers (see ``wire``)
    GET  /v1/models             OpenAI list shape
    GET  /healthz               liveness

Per-request control headers (all optional):
    x-simulator-latency-ms   this request's latency, instead of the server-wide one
    x-simulator-jitter-ms    this request's jitter: latency varies by +/- this much
    x-simulator-fail         answer with an error instead: an HTTP status (400, 401,
                             403, 404, 429, 500, 503, 529, any 4xx/5xx) or a condition
                             (context_length_exceeded, content_filter, insufficient_quota)

Latency is applied with ``asyncio.sleep`` after the body is validated and before
the answer or the injected failure, so a slow failing provider can be simulated.
There is no per-request logging: the simulator is the baseline in benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.simulator.wire import (
    WireError,
    generate,
    header_ms,
    injected_failure,
    parse_chat,
)

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "o4-mini",
    "o3",
    "codestral-latest",
    "claude-sonnet-4",
)
LATENCY_HEADER = "x-simulator-latency-ms"
JITTER_HEADER = "x-simulator-jitter-ms"
FAIL_HEADER = "x-simulator-fail"


def _json(
    payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _error(exc: WireError) -> Response:
    return _json(exc.body(), exc.status, exc.headers)


def _completion(
    model: str, text: str, prompt_tokens: int, completion_tokens: int, finish_reason: str
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_switchyard_sim",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _delay_s(request: Request, latency_ms: float, jitter_ms: float) -> float:
    base = header_ms(request.headers.get(LATENCY_HEADER), latency_ms, LATENCY_HEADER)
    jitter = header_ms(request.headers.get(JITTER_HEADER), jitter_ms, JITTER_HEADER)
    if jitter > 0:
        base += random.uniform(-jitter, jitter)
    return max(0.0, base) / 1000.0


def create_simulator_app(
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
) -> FastAPI:
    """A simulator app whose answers take ``latency_ms`` +/- ``jitter_ms``."""
    if latency_ms < 0 or jitter_ms < 0:
        raise ValueError("latency_ms and jitter_ms must be >= 0")
    app = FastAPI(title="Switchyard provider simulator", version="1")
    created = int(time.time())
    model_list = {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": created, "owned_by": "switchyard-simulator"}
            for m in models
        ],
    }

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(WireError(exc.status_code, str(exc.detail)))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """Answer a chat completion deterministically, in OpenAI's wire format."""
        try:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise WireError(400, "We could not parse the JSON body of your request.") from None
            call = parse_chat(body)
            delay_s = _delay_s(request, latency_ms, jitter_ms)
            fail = request.headers.get(FAIL_HEADER)
        except WireError as exc:
            return _error(exc)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if fail:
            return _error(injected_failure(fail))
        text, completion_tokens, finish = generate(call)
        return _json(_completion(call.model, text, call.prompt_tokens, completion_tokens, finish))

    @app.get("/v1/models")
    async def list_models() -> Response:
        """The models this simulator advertises (it answers for any model name)."""
        return _json(model_list)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    return app


def run_simulator(host: str, port: int, latency_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
    """Serve the simulator until interrupted (no access log: it runs under benchmarks)."""
    app = create_simulator_app(latency_ms, jitter_ms)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
