"""OpenAI Batch API intake: an uploaded JSONL file -> routed jobs, and the lines refused alone.

Each input line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
"body": {...chat request...}}``. A line that is not JSON, lacks or repeats its
``custom_id``, names another endpoint, has an invalid body, or cannot be routed
(an unknown model, an over-long prompt) is refused on its own: it lands in the
batch's error file with its ``custom_id`` (recovered from the raw text when the
line is not JSON), and the other lines run. A batch whose every line is refused
is ``failed``.

The native endpoint (a JSON array or JSON Lines of jobs) keeps refusing the
whole batch with a 422 naming the line: its callers submit and fix in one step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from orchestrator.admission import json_body
from orchestrator.admission.dispatch import BatchSpec, Dispatcher, Routed
from orchestrator.admission.json_body import InvalidJSON
from orchestrator.core.config import Settings
from orchestrator.core.errors import NotFound, ValidationFailed
from orchestrator.core.schemas import JobRequest
from orchestrator.store import files
from orchestrator.store.db import session_scope
from orchestrator.wire.batch_objects import CreateBatchRequest
from orchestrator.wire.openai_schemas import ChatCompletionRequest
from orchestrator.wire.webhooks import check_callback_url

_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


def refused(line: int, custom_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {"line": line, "custom_id": custom_id, "code": code, "message": message}


def _first_error(exc: ValidationError, prefix: str) -> tuple[str, str]:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return (f"{prefix}.{loc}" if loc else prefix), str(first["msg"])


def parse_line(
    number: int, text: str, endpoint: str, seen: set[str]
) -> tuple[JobRequest | None, dict[str, Any] | None]:
    """One input line -> its job request, or the reason it is refused."""
    salvaged = _CUSTOM_ID.search(text)
    guess = salvaged.group(1) if salvaged else None
    try:  # bounded: a deep, huge-number or NaN line is refused here, alone
        data = json_body.loads(text)
    except InvalidJSON as exc:
        return None, refused(number, guess, "invalid_json", f"line {number}: {exc.message}")
    except ValidationFailed as exc:
        message = f"line {number}: {exc.field}: {exc.message}"
        return None, refused(number, guess, "invalid_request", message)
    if not isinstance(data, dict):
        return None, refused(number, guess, "invalid_request", f"line {number}: not an object")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 200:
        message = f"line {number}: custom_id must be a string of 1 to 200 characters"
        return None, refused(number, None, "missing_custom_id", message)
    if custom_id in seen:
        message = f"line {number}: custom_id {custom_id!r} repeats an earlier line"
        return None, refused(number, custom_id, "duplicate_custom_id", message)
    seen.add(custom_id)
    if data.get("method", "POST") != "POST" or data.get("url") != endpoint:
        message = f"line {number}: method must be POST and url {endpoint!r}"
        return None, refused(number, custom_id, "invalid_url", message)
    try:
        chat = ChatCompletionRequest.model_validate(data.get("body"))
        return chat.to_job_request(custom_id=custom_id), None
    except ValidationError as exc:
        where, why = _first_error(exc, "body")
        return None, refused(number, custom_id, "invalid_request", f"line {number}: {where}: {why}")


def input_lines(content: bytes) -> list[tuple[int, str]]:
    """The file's lines that are not blank, with their line numbers."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("input_file_id", "the file is not UTF-8") from exc
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_file(content: bytes, endpoint: str) -> tuple[list[tuple[int, JobRequest]], list[Any]]:
    """(line index, request) for every good line, and the refusals, in line order."""
    return parse_lines(input_lines(content), endpoint)


def parse_lines(
    lines: Sequence[tuple[int, str]], endpoint: str
) -> tuple[list[tuple[int, JobRequest]], list[Any]]:
    """``parse_file`` for lines already split (``input_lines``)."""
    good: list[tuple[int, JobRequest]] = []
    bad: list[Any] = []
    seen: set[str] = set()
    for number, line in lines:
        request, refusal = parse_line(number, line, endpoint, seen)
        if request is not None:
            good.append((number - 1, request))
        else:
            bad.append(refusal)
    return good, bad


def route_lines(
    dispatcher: Dispatcher, lines: Sequence[tuple[int, JobRequest]], refusals: list[Any]
) -> list[Routed]:
    """Route every good line; one the router refuses joins ``refusals``."""
    routed: list[Routed] = []
    for index, request in lines:
        try:
            routed.append(Routed(index, request, dispatcher.decide(request, field="body")))
        except ValidationFailed as exc:
            message = f"line {index + 1}: {exc.field}: {exc.message}"
            refusals.append(refused(index + 1, request.custom_id, "invalid_request", message))
    refusals.sort(key=lambda r: int(r["line"]))
    return routed


def submit_openai_batch(
    dispatcher: Dispatcher, settings: Settings, *, tenant_id: str, create: CreateBatchRequest
) -> str:
    """Create a batch from an uploaded input file; returns the batch id."""
    with session_scope(dispatcher.engine) as session:
        row = files.get_file(
            session, tenant_id=tenant_id, file_id=create.input_file_id, content=True
        )
        if row is None:
            raise NotFound(f"no file {create.input_file_id!r}")
        if row.purpose != "batch":
            raise ValidationFailed("input_file_id", f"the file's purpose is {row.purpose!r}")
        content = row.content
    if create.callback_url is not None:
        check_callback_url(create.callback_url, allow_private=settings.webhook_allow_private)
    numbered = input_lines(content)
    if not numbered:
        raise ValidationFailed("input_file_id", "the file has no requests")
    dispatcher.check_batch_size(len(numbered))  # counted before any line is parsed
    lines, refusals = parse_lines(numbered, create.endpoint)
    routed = route_lines(dispatcher, lines, refusals)
    spec = BatchSpec(
        input_file_id=create.input_file_id,
        endpoint=create.endpoint,
        metadata=dict(create.metadata or {}),
        callback_url=create.callback_url,
        rejected=tuple(refusals),
        completion_window=create.completion_window,  # it may go by provider batch
    )
    return dispatcher.admit_batch(tenant_id=tenant_id, routed=routed, spec=spec)
