"""Settings secrets, the SDK's error mapping, batch statuses and OpenAI chat requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from orchestrator.client.common import error_from
from orchestrator.core.config import Settings
from orchestrator.core.errors import (
    ApiError,
    JobUnfinished,
    NotFound,
    RateLimited,
    TooLarge,
    ValidationFailed,
)
from orchestrator.jobs.views import batch_status, batch_view
from orchestrator.store.models import Batch
from orchestrator.store.repo import BatchTotals
from orchestrator.wire.batch_objects import BatchStatus
from orchestrator.wire.openai_schemas import ChatCompletionRequest


def test_provider_keys_come_from_env_file_or_directory_and_never_show(tmp_path: Path) -> None:
    # Given keys in the env map, a JSON file and a secrets directory
    (tmp_path / "keys.json").write_text(json.dumps({"filed": "sk-file"}))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "mounted").write_text("sk-mounted\n")
    settings = Settings(
        provider_keys={"env": "sk-env-secret"},
        provider_keys_file=tmp_path / "keys.json",
        provider_keys_dir=tmp_path / "dir",
    )
    # Then each is found by its ref, and none appears when the settings are printed
    assert settings.provider_key("env") == "sk-env-secret"
    assert settings.provider_key("filed") == "sk-file"
    assert settings.provider_key("mounted") == "sk-mounted"
    assert settings.provider_key("missing") is None
    assert "sk-env-secret" not in repr(settings) and "sk-env-secret" not in str(settings)


@pytest.mark.parametrize("key", ["changeme", "secret", "short-key"])
def test_placeholder_or_short_admin_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        Settings(admin_api_key=key)


def answer(status: int, error: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error}, headers=headers)


def test_error_answers_become_the_orchestrators_error_classes() -> None:
    assert isinstance(error_from(answer(404, {"type": "not_found", "message": "no"})), NotFound)
    bad = error_from(answer(422, {"type": "invalid_request", "message": "m", "field": "tier"}))
    assert isinstance(bad, ValidationFailed) and bad.field == "tier"
    assert isinstance(
        error_from(answer(413, {"type": "request_too_large", "message": "m"})), TooLarge
    )
    limited = error_from(
        answer(429, {"type": "rate_limited", "message": "m"}, **{"retry-after": "7"})
    )
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 7
    failed = error_from(
        answer(502, {"type": "failed", "message": "m"}, **{"x-switchyard-job-id": "job_1"})
    )
    assert isinstance(failed, JobUnfinished) and failed.job_id == "job_1"
    other = error_from(httpx.Response(500, text="boom"))
    assert isinstance(other, ApiError) and other.status_code == 500


def batch(total: int, *, cancelled: bool = False, rejected: int = 0) -> Batch:
    row = Batch(
        id="bat_1",
        tenant_id="t",
        total=total,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        batch_metadata={},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    row.cancelled_at = datetime(2026, 1, 1, 0, 1, tzinfo=UTC) if cancelled else None
    row.rejected = [
        {"line": i + 1, "custom_id": f"r{i}", "code": "invalid_json", "message": "m"}
        for i in range(rejected)
    ]
    return row


def totals(**by_status: int) -> BatchTotals:
    return BatchTotals(by_status=by_status, cost_micro_usd=5, last_finished_at=None)


@pytest.mark.parametrize(
    ("row", "counts", "status"),
    [
        (batch(3), {"queued": 1, "succeeded": 2}, BatchStatus.IN_PROGRESS),
        (batch(3), {"failed": 1, "succeeded": 2}, BatchStatus.COMPLETED),
        (batch(3), {"expired": 1, "succeeded": 2}, BatchStatus.EXPIRED),
        (batch(3, cancelled=True), {"running": 1, "cancelled": 2}, BatchStatus.CANCELLING),
        (batch(3, cancelled=True), {"succeeded": 1, "cancelled": 2}, BatchStatus.CANCELLED),
        (batch(0, rejected=2), {}, BatchStatus.FAILED),
    ],
)
def test_batch_status_follows_its_jobs(
    row: Batch, counts: dict[str, int], status: BatchStatus
) -> None:
    assert batch_status(row, totals(**counts)) is status


def test_batch_view_counts_refused_lines_as_failed_requests() -> None:
    view = batch_view(batch(2, rejected=1), totals(succeeded=1, failed=1))
    assert (
        view.request_counts.total,
        view.request_counts.completed,
        view.request_counts.failed,
    ) == (3, 1, 2)
    assert view.output_file_id == "file_out_bat_1" and view.error_file_id == "file_err_bat_1"
    assert view.errors is not None and view.errors.data[0].line == 1


def test_chat_request_maps_model_names_to_routing() -> None:
    messages = [{"role": "user", "content": "hi", "refusal": None, "annotations": []}]
    auto = ChatCompletionRequest(model="auto", messages=messages, stop="END").to_job_request()
    assert (auto.tier, auto.model, auto.stop, auto.max_tokens) == (None, None, ["END"], 4096)
    tier = ChatCompletionRequest(model="tier:vision", messages=messages, max_completion_tokens=9)
    assert tier.to_job_request().tier == "vision" and tier.to_job_request().max_tokens == 9
    named = ChatCompletionRequest(model="gpt-4o-mini", messages=messages).to_job_request()
    assert named.model == "gpt-4o-mini"
    with pytest.raises(ValidationError):
        ChatCompletionRequest(model="tier:gold", messages=messages).to_job_request()
