"""What both SDK clients share: error answers -> ``orchestrator.core.errors``, JSON Lines framing,
and where the API is for a given ``Settings``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import SecretStr, ValidationError

from orchestrator.core.errors import (
    ApiError,
    BudgetExceeded,
    Conflict,
    Forbidden,
    JobUnfinished,
    NotFound,
    RateLimited,
    SwitchyardError,
    TooLarge,
    Unauthorized,
    ValidationFailed,
)
from orchestrator.core.schemas import JobRequest
from orchestrator.wire.batch_objects import BatchView

JobInput = JobRequest | Mapping[str, Any]
Progress = Callable[[BatchView], None]


def error_from(response: httpx.Response) -> SwitchyardError:
    """The ``orchestrator.core.errors`` class for an error answer."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = str(error.get("message") or response.text[:200] or response.reason_phrase)
    field = str(error.get("field") or "body")
    status = response.status_code
    simple: dict[int, type[SwitchyardError]] = {
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        409: Conflict,
    }
    if status in simple and "x-switchyard-job-id" not in response.headers:
        return simple[status](message)
    if status == 413:
        return TooLarge(field, message)
    if status == 422:
        return ValidationFailed(field, message)
    if status == 429:
        return RateLimited(message, float(response.headers.get("retry-after", "1")))
    if status == 402:
        return BudgetExceeded(field.removeprefix("budget."), message)
    if "x-switchyard-job-id" in response.headers:
        return JobUnfinished(
            response.headers["x-switchyard-job-id"], str(error.get("type")), message
        )
    return ApiError(status, str(error.get("type") or "error"), message)


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise error_from(response)
    return response


def job_request(item: JobInput, index: int | None = None) -> JobRequest:
    if isinstance(item, JobRequest):
        return item
    try:
        return JobRequest.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        where = f"[{index}]" if index is not None else ""
        raise ValidationFailed(f"{where}.{loc}".strip(".") or "body", first["msg"]) from exc


def jsonl(items: Iterable[JobInput]) -> Iterator[bytes]:
    for index, item in enumerate(items):
        body = job_request(item, index).model_dump_json(exclude_none=True, by_alias=True)
        yield body.encode() + b"\n"


def job_input(request: JobInput | None, fields: dict[str, Any]) -> dict[str, Any]:
    merged = {**(dict(request) if isinstance(request, Mapping) else {}), **fields}
    if isinstance(request, JobRequest):
        merged = {**request.model_dump(mode="json", exclude_none=True), **fields}
    return job_request(merged).model_dump(mode="json", exclude_none=True)


def batch_done(view: BatchView) -> bool:
    return view.status.final


class TargetSettings(Protocol):
    """Where the API is and the key: what ``from_settings`` reads of a settings object.

    ``orchestrator.core.config.Settings`` is one; the SDK does not import it.
    """

    @property
    def api_url(self) -> str | None: ...

    @property
    def api_key(self) -> SecretStr | None: ...

    @property
    def api_port(self) -> int: ...

    @property
    def state_path(self) -> Path: ...


class ClientBase:
    """What both clients share: where the API is, the key, and the JSONL framing."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.timeout_s = timeout_s

    @classmethod
    def settings_target(cls, settings: TargetSettings) -> tuple[str, str]:
        """(API URL, API key) from the settings: ``api_url``/``api_key``, else the demo key."""
        url = settings.api_url or f"http://127.0.0.1:{settings.api_port}"
        if settings.api_key is not None:
            return url, settings.api_key.get_secret_value()
        key_file = settings.state_path / "demo.key"
        if not key_file.exists():
            raise Unauthorized(
                f"no API key: set SWITCHYARD_API_KEY or run `switchyard up` ({key_file})"
            )
        return url, key_file.read_text().strip()
