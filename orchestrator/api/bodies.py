"""JSON request bodies: decoded by ``admission.json_body``, validated off the event loop.

Every router that takes a JSON body uses ``JSONBodyRoute``. Its request's
``json()`` (what FastAPI awaits to read a body) decodes with the bounded decoder
and validates the body model there too, returning the model: FastAPI's own
validation then passes the instance through untouched. A body over
``INLINE_BYTES`` does both in a worker thread, so its schema checks and
validators never hold the event loop; a small one (most chat completions)
stays inline, which is cheaper than a thread hop and bounded by its size.

A refusal raised there reaches the app's handlers as the cause of FastAPI's
400 (``orchestrator.api.app``), which answers it as the 422 (or 413) it is.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope

from orchestrator.admission import json_body
from orchestrator.core.errors import ValidationFailed

INLINE_BYTES = 2048  # about 60 schemas at most: a few ms of checks


def refusal(errors: Sequence[Any], prefix: str = "body") -> ValidationFailed:
    """The first of pydantic's (or FastAPI's) validation errors, as a 422 naming its field."""
    first = errors[0]
    loc = [p for p in first.get("loc", ()) if p != "body"]
    return ValidationFailed(json_body.field_name(prefix, loc), str(first.get("msg")))


def small(request: Request) -> bool:
    """Whether the request declared a body small enough to handle on the event loop."""
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) <= INLINE_BYTES


class _DecodedRequest(Request):
    def __init__(self, scope: Scope, receive: Receive, decode: Callable[[bytes], Any]) -> None:
        super().__init__(scope, receive)
        self._decode = decode

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            if len(raw) <= INLINE_BYTES:
                self._json = self._decode(raw)
            else:
                self._json = await run_in_threadpool(self._decode, raw)
        return self._json


class JSONBodyRoute(APIRoute):
    """A route whose JSON body is bounded (``json_body``) and validated off the event loop."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        field = self.body_field
        whole = field is not None and len(self.dependant.body_params) == 1
        if not whole or self._embed_body_fields:
            field = None  # several body parameters: FastAPI takes them apart itself

        def decode(raw: bytes) -> Any:
            data = json_body.loads(raw)
            if field is None:
                return data
            value, errors = field.validate(data, {}, loc=("body",))
            if errors:
                raise refusal(errors)
            return value

        async def route(request: Request) -> Response:
            return await handler(_DecodedRequest(request.scope, request.receive, decode))

        return route
