"""The batch resource as the API shows it: OpenAI's Batch object plus Switchyard's extras.

One resource serves both ways of submitting a batch (a JSON array or JSON Lines
of jobs, or OpenAI's ``input_file_id``), so the official ``openai`` SDK parses
every batch, and Switchyard clients get the per-status ``counts`` and the spend
on top. Times are unix seconds, as in OpenAI's API.

    status        when
    in_progress   some jobs are not final
    cancelling    cancelled, and a running job has yet to stop
    cancelled     cancelled, and every job is final
    completed     every job is final (some may have failed: see request_counts)
    expired       every job is final, and some expired before they could run
    failed        no line of the input could be run (see ``errors``)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class BatchStatus(StrEnum):
    """OpenAI's batch statuses (``validating`` and ``finalizing`` pass too fast to be seen)."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in {
            BatchStatus.FAILED,
            BatchStatus.COMPLETED,
            BatchStatus.EXPIRED,
            BatchStatus.CANCELLED,
        }


class BatchCounts(BaseModel):
    """How many of a batch's requests are in each state; ``rejected`` lines never ran."""

    total: int = 0
    queued: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0
    rejected: int = 0


class RequestCounts(BaseModel):
    """OpenAI's ``request_counts``: ``failed`` is every request in the error file."""

    total: int
    completed: int
    failed: int


class BatchErrorItem(BaseModel):
    """One input line that could not run (OpenAI's ``errors.data``)."""

    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    """The lines refused before the batch ran (first ones only; all are in the error file)."""

    object: Literal["list"] = "list"
    data: list[BatchErrorItem] = Field(default_factory=list)


class BatchView(BaseModel):
    """A batch: OpenAI's Batch object, plus ``counts`` and ``cost_micro_usd``."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    input_file_id: str | None = None
    completion_window: str = "24h"
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: BatchErrors | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    metadata: dict[str, str] | None = None
    counts: BatchCounts
    cost_micro_usd: int = 0
    # Spend from the batch's ledger rows: totals, by tier and deployment, cache hits
    # (COSTS.md); shown by GET /v1/batches/{id}, not in the list.
    cost_summary: dict[str, Any] | None = None
    callback_url: str | None = None


class BatchList(BaseModel):
    """A page of batches, newest first (OpenAI's cursor page)."""

    object: Literal["list"] = "list"
    data: list[BatchView]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class BatchResultLine(BaseModel):
    """One line of ``GET /v1/batches/{id}/results``: one request, in submission order."""

    index: int | None
    custom_id: str | None = None
    job_id: str | None = None
    status: str
    tier: str | None = None
    deployment: str | None = None
    provider: str | None = None
    model: str | None = None
    output: str | None = None
    error: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    cost_micro_usd: int = 0
    latency_ms: int | None = None


class CreateBatchRequest(BaseModel):
    """OpenAI's ``POST /v1/batches`` body (``callback_url`` is Switchyard's addition)."""

    input_file_id: str = Field(min_length=1, max_length=60)
    endpoint: Literal["/v1/chat/completions"]
    completion_window: Literal["24h"] = "24h"
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    callback_url: str | None = Field(default=None, max_length=2000)
