"""Rows -> the pydantic views the API returns (the SDK parses the same models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.core.schemas import (
    JobStatus,
    JobView,
    RoutingStep,
    ToolCall,
    Usage,
)
from orchestrator.core.tiers import Tier
from orchestrator.pipelines.progress import pipeline_steps
from orchestrator.store.models import Batch, Job
from orchestrator.store.repo import BatchTotals
from orchestrator.wire.batch_objects import (
    BatchCounts,
    BatchErrorItem,
    BatchErrors,
    BatchResultLine,
    BatchStatus,
    BatchView,
    RequestCounts,
)

OUTPUT_FILE_PREFIX = "file_out_"
ERROR_FILE_PREFIX = "file_err_"
WINDOW_S = {"24h": 86_400}


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def job_view(job: Job) -> JobView:
    created = aware(job.created_at)
    assert created is not None
    current_step, steps = pipeline_steps(job)  # a pipeline's progress (PIPELINES.md)
    return JobView(
        id=job.id,
        status=JobStatus(job.status),
        tier=Tier(job.tier),
        tier_reasons=list(job.tier_reasons),
        plan=list(job.plan),
        routing=[RoutingStep.model_validate(step) for step in job.routing or []],
        batch_id=job.batch_id,
        custom_id=job.custom_id,
        deployment=job.deployment,
        provider=job.provider,
        model=job.model,
        output=job.output,
        finish_reason=job.finish_reason,
        tool_calls=[ToolCall.model_validate(c) for c in job.tool_calls] if job.tool_calls else None,
        usage=Usage(
            input_tokens=job.input_tokens,
            output_tokens=job.output_tokens,
            cached_input_tokens=job.cached_input_tokens,
            reasoning_tokens=job.reasoning_tokens,
        ),
        cost_micro_usd=job.cost_micro_usd,
        latency_ms=job.latency_ms,
        attempts=job.attempts,
        cache_hit=bool(job.cache_hit),
        error=job.error,
        created_at=created,
        deadline_at=aware(job.deadline_at),
        next_attempt_at=aware(job.next_attempt_at),
        finished_at=aware(job.finished_at),
        parent_job_id=job.parent_job_id,
        current_step=current_step,
        steps=steps,
    )


def unix(value: datetime | None) -> int | None:
    """Unix seconds, as OpenAI's objects carry times."""
    moment = aware(value)
    return int(moment.timestamp()) if moment is not None else None


def batch_status(batch: Batch, totals: BatchTotals) -> BatchStatus:
    """OpenAI's status of a batch, from its jobs (see ``orchestrator.wire.batch_objects``)."""
    final = sum(totals.by_status.get(s.value, 0) for s in JobStatus if s.final)
    done = final >= batch.total
    if batch.total == 0:
        return BatchStatus.FAILED
    if batch.cancelled_at is not None:
        return BatchStatus.CANCELLED if done else BatchStatus.CANCELLING
    if not done:
        return BatchStatus.IN_PROGRESS
    if totals.by_status.get(JobStatus.EXPIRED.value, 0):
        return BatchStatus.EXPIRED
    return BatchStatus.COMPLETED


def batch_counts(batch: Batch, totals: BatchTotals) -> BatchCounts:
    rejected = len(batch.rejected or [])
    by_status = {s.value: totals.by_status.get(s.value, 0) for s in JobStatus}
    return BatchCounts(total=batch.total + rejected, rejected=rejected, **by_status)


def batch_view(batch: Batch, totals: BatchTotals) -> BatchView:
    counts = batch_counts(batch, totals)
    status = batch_status(batch, totals)
    created = unix(batch.created_at)
    assert created is not None
    ended = unix(totals.last_finished_at) or created
    failed = counts.failed + counts.expired + counts.cancelled + counts.rejected
    rejected = [BatchErrorItem.model_validate(r) for r in (batch.rejected or [])[:100]]
    return BatchView(
        id=batch.id,
        endpoint=batch.endpoint,
        input_file_id=batch.input_file_id,
        completion_window=batch.completion_window,
        status=status,
        output_file_id=output_file_id(batch.id) if status.final and counts.succeeded else None,
        error_file_id=error_file_id(batch.id) if status.final and failed else None,
        errors=BatchErrors(data=rejected) if rejected else None,
        created_at=created,
        in_progress_at=created if batch.total else None,
        expires_at=created + WINDOW_S.get(batch.completion_window, 86_400),
        completed_at=ended if status is BatchStatus.COMPLETED else None,
        failed_at=created if status is BatchStatus.FAILED else None,
        expired_at=ended if status is BatchStatus.EXPIRED else None,
        cancelling_at=unix(batch.cancelled_at),
        cancelled_at=max(ended, unix(batch.cancelled_at) or 0)
        if status is BatchStatus.CANCELLED
        else None,
        request_counts=RequestCounts(total=counts.total, completed=counts.succeeded, failed=failed),
        metadata=dict(batch.batch_metadata or {}) or None,
        counts=counts,
        cost_micro_usd=totals.cost_micro_usd,
        callback_url=batch.callback_url,
    )


def output_file_id(batch_id: str) -> str:
    return f"{OUTPUT_FILE_PREFIX}{batch_id}"


def error_file_id(batch_id: str) -> str:
    return f"{ERROR_FILE_PREFIX}{batch_id}"


def result_line(job: Job) -> BatchResultLine:
    """One line of a batch's results file, matched to its input by index and custom_id."""
    return BatchResultLine(
        index=job.batch_index,
        custom_id=job.custom_id,
        job_id=job.id,
        status=job.status,
        tier=job.tier,
        deployment=job.deployment,
        provider=job.provider,
        model=job.model,
        output=job.output,
        error=job.error,
        usage={"input_tokens": job.input_tokens, "output_tokens": job.output_tokens},
        cost_micro_usd=job.cost_micro_usd,
        latency_ms=job.latency_ms,
    )


def rejected_line(item: dict[str, Any]) -> BatchResultLine:
    """A results line for an input line that was refused and never ran."""
    return BatchResultLine(
        index=item.get("line", 0) - 1 if item.get("line") else None,
        custom_id=item.get("custom_id"),
        status="rejected",
        error=str(item.get("message")),
    )
