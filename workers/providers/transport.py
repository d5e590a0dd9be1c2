"""The one HTTP exchange every adapter makes: POST JSON, map failures, parse the answer.

Adapters differ in the URL, the headers, the body and the parser; everything
around the call (transport errors, non-2xx answers, 2xx bodies that are not a
completion) is the same and lives here, so no adapter can forget a case.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest, ToolCall, Usage
from orchestrator.core.tokens import estimate_request_tokens, estimate_tokens, estimate_tools_tokens
from workers.providers.errors import (
    ContentPolicy,
    ServerError,
    error_from_response,
    error_from_transport,
)


class Malformed(Exception):
    """A 2xx answer that is not a completion (the reason is the message)."""


class Blocked(Exception):
    """A 2xx answer that refuses the prompt on content grounds (Gemini's blockReason)."""


Parser = Callable[[Any, JobRequest], Completion]


def post_json(
    client: httpx.Client,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    deployment: Deployment,
    request: JobRequest,
    api_key: str | None,
    parse: Parser,
) -> Completion:
    """POST ``body`` and parse the answer; every failure is a ``ProviderError``.

    ``parse`` may raise ``Malformed`` (becomes ``ServerError``) or ``Blocked``
    (becomes ``ContentPolicy``).
    """
    where: dict[str, Any] = {"provider": deployment.provider, "model": deployment.model}
    try:
        response = post(client, url, body=body, headers=headers)
    except httpx.TransportError as exc:
        raise error_from_transport(exc, api_key=api_key, **where) from None
    if not response.is_success:
        raise error_from_response(response, api_key=api_key, **where)
    try:
        data = response.json()
    except ValueError:
        raise ServerError(
            "malformed completion: JSONDecodeError", status=response.status_code, **where
        ) from None
    return parse_answer(data, request, parse, status=response.status_code, where=where)


def post(
    client: httpx.Client, url: str, *, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """``client.post(url, json=body, headers=headers)``, read whole, through the client's
    transport but without ``Client.send``'s auth, redirect and cookie steps. The URL
    is parsed once per distinct string (``parsed_url``): httpx parses a string on
    every request, a sixth of ``build_request``'s cost in a profiled worker.

    Provider calls use none of them (keys travel in headers, providers do not
    redirect, cookies are not kept), and they were a large part of a call's cost
    in the calling process (``Client.post`` against ``handle_request``, measured on
    the simulator; BENCHMARKS.md). The request is still the
    client's own (``build_request``: its default headers and timeout), sent by the
    transport the client would pick (``_transport_for_url``, so mounts and tests'
    ``MockTransport`` are honoured).
    """
    kept = parsed_url(url) if type(client.base_url) is httpx.URL else url  # not a look-alike's
    request = client.build_request("POST", kept, json=body, headers=headers)
    response = client._transport_for_url(request.url).handle_request(request)
    response.request = request
    try:
        response.read()
    finally:
        response.close()
    return response


@lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, kept: a URL is immutable, and a worker calls a few endpoints."""
    return httpx.URL(url)


def parse_answer(
    data: Any, request: JobRequest, parse: Parser, *, status: int, where: dict[str, Any]
) -> Completion:
    """``parse(data)``; ``Blocked`` becomes ``ContentPolicy``, any other failure ``ServerError``."""
    try:
        return parse(data, request)
    except Blocked as exc:
        raise ContentPolicy(str(exc), status=status, **where) from None
    except (ValueError, TypeError, KeyError, AttributeError, Malformed) as exc:
        reason = str(exc) if isinstance(exc, Malformed) else f"{type(exc).__name__}"
        raise ServerError(f"malformed completion: {reason}", status=status, **where) from None


def int_field(data: object, name: str) -> int | None:
    """``data[name]`` if ``data`` is a dict and that is an int (not a bool), else None."""
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def estimated_input_tokens(request: JobRequest) -> int:
    """Prompt tokens for ``request`` when a provider does not report them."""
    return estimate_request_tokens(request.canonical_messages()) + estimate_tools_tokens(
        request.tools
    )


def fill_usage(usage: Usage, request: JobRequest, text: str) -> Usage:
    """``usage`` with zero input/output counts estimated, so every billed call has tokens."""
    updates: dict[str, int] = {}
    if usage.input_tokens == 0:
        updates["input_tokens"] = estimated_input_tokens(request)
    if usage.output_tokens == 0 and text:
        updates["output_tokens"] = estimate_tokens(text)
    return usage.model_copy(update=updates) if updates else usage


def build_completion(
    request: JobRequest,
    *,
    text: str,
    finish_reason: str,
    usage: Usage,
    tool_calls: list[ToolCall],
    model: object,
) -> Completion:
    """The canonical answer, its usage filled in (over text and tool arguments) where
    missing, its strings ``storable``."""
    text = storable(text)
    tool_calls = [_storable_call(c) for c in tool_calls]
    arguments = "".join(c.function.arguments for c in tool_calls)
    return Completion(
        text=text,
        finish_reason=finish_reason,
        usage=fill_usage(usage, request, text + arguments),
        provider_model=storable(model) if isinstance(model, str) else None,
        tool_calls=tool_calls,
    )


REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """``text`` as a Postgres text or JSON column takes it: a NUL, which none takes, and
    half a surrogate pair, which a provider's JSON escapes can carry, become U+FFFD. The
    call is paid either way; without this the answer's write was refused and the job
    failed with the answer lost."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def _storable_call(call: ToolCall) -> ToolCall:
    function = call.function
    fields = (call.id, function.name, function.arguments)
    clean = tuple(storable(f) for f in fields)
    if clean == fields:
        return call
    new_function = function.model_copy(update={"name": clean[1], "arguments": clean[2]})
    return call.model_copy(update={"id": clean[0], "function": new_function})
