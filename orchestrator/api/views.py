"""Rows -> the pydantic views the API returns (the SDK parses the same models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.schemas import (
    BatchCounts,
    BatchStatus,
    BatchView,
    JobStatus,
    JobView,
    RoutingStep,
    ToolCall,
    Usage,
)
from orchestrator.store.models import Batch, Job
from orchestrator.store.repo import BatchTotals
from orchestrator.tiers import Tier


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def job_view(job: Job) -> JobView:
    created = aware(job.created_at)
    assert created is not None
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
        error=job.error,
        created_at=created,
        deadline_at=aware(job.deadline_at),
        next_attempt_at=aware(job.next_attempt_at),
        finished_at=aware(job.finished_at),
    )


def batch_view(batch: Batch, totals: BatchTotals) -> BatchView:
    counts = BatchCounts(
        total=batch.total, **{s.value: totals.by_status.get(s.value, 0) for s in JobStatus}
    )
    final = sum(totals.by_status.get(s.value, 0) for s in JobStatus if s.final)
    done = final == batch.total
    created = aware(batch.created_at)
    assert created is not None
    return BatchView(
        id=batch.id,
        status=BatchStatus.COMPLETED if done else BatchStatus.IN_PROGRESS,
        counts=counts,
        cost_micro_usd=totals.cost_micro_usd,
        created_at=created,
        completed_at=aware(totals.last_finished_at) if done else None,
    )


def result_line(job: Job) -> dict[str, Any]:
    """One line of a batch's results file, matched to its input by index and custom_id."""
    return {
        "index": job.batch_index,
        "custom_id": job.custom_id,
        "job_id": job.id,
        "status": job.status,
        "tier": job.tier,
        "deployment": job.deployment,
        "provider": job.provider,
        "model": job.model,
        "output": job.output,
        "error": job.error,
        "usage": {"input_tokens": job.input_tokens, "output_tokens": job.output_tokens},
        "cost_micro_usd": job.cost_micro_usd,
        "latency_ms": job.latency_ms,
    }
