"""Job rows -> OpenAI's shapes: chat completions, stream chunks, batch output and error lines.

A batch's output file holds one line per succeeded request and its error file one
per request that did not succeed (failed, expired, cancelled, or a line refused
before it ran), each matched to its input by ``custom_id`` and in input order.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.core.messages import ToolCall
from orchestrator.core.schemas import JobStatus
from orchestrator.jobs.views import unix
from orchestrator.store.models import Job
from orchestrator.wire.openai_schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    CompletionTokensDetails,
    CompletionUsage,
    PromptTokensDetails,
    SwitchyardFacts,
)

CHUNK_CHARS = 64
"""Characters per content chunk when text is streamed from the job row (not relayed live)."""


def facts(job: Job) -> SwitchyardFacts:
    return SwitchyardFacts(
        job_id=job.id,
        tier=job.tier,
        deployment=job.deployment,
        provider=job.provider,
        cost_micro_usd=job.cost_micro_usd,
        latency_ms=job.latency_ms,
        cache_hit=bool(job.cache_hit),
    )


def facts_headers(job: Job) -> dict[str, str]:
    """``x-switchyard-*`` response headers: job, tier, deployment, provider, cost."""
    headers = {"x-switchyard-job-id": job.id, "x-switchyard-tier": job.tier}
    if job.deployment:
        headers["x-switchyard-deployment"] = job.deployment
        headers["x-switchyard-provider"] = job.provider or ""
        headers["x-switchyard-cost-micro-usd"] = str(job.cost_micro_usd)
    if job.cache_hit:
        headers["x-switchyard-cache"] = "hit"
    return headers


def usage(job: Job) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=job.input_tokens,
        completion_tokens=job.output_tokens,
        total_tokens=job.input_tokens + job.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=job.cached_input_tokens),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=job.reasoning_tokens),
    )


def completion_id(job: Job) -> str:
    return f"chatcmpl-{job.id}"


def chat_completion(job: Job) -> ChatCompletion:
    """A succeeded job as OpenAI's ``chat.completion``."""
    tool_calls = [ToolCall.model_validate(c) for c in job.tool_calls] if job.tool_calls else None
    message = AssistantMessage(content=job.output, tool_calls=tool_calls)
    return ChatCompletion(
        id=completion_id(job),
        created=unix(job.finished_at or job.created_at) or 0,
        model=job.model or "",
        choices=[ChatChoice(message=message, finish_reason=job.finish_reason or "stop")],
        usage=usage(job),
        switchyard=facts(job),
    )


def chunk(job: Job, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    return {
        "id": completion_id(job),
        "object": "chat.completion.chunk",
        "created": unix(job.created_at),
        "model": job.model or "",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def answer_chunks(
    job: Job, *, include_usage: bool, skip_chars: int = 0
) -> Iterator[dict[str, Any]]:
    """A finished answer as chunks: its text (after ``skip_chars`` already sent) in pieces,
    tool calls, then the finish and the usage."""
    text = (job.output or "")[skip_chars:]
    for start in range(0, len(text), CHUNK_CHARS):
        yield chunk(job, {"content": text[start : start + CHUNK_CHARS]})
    for index, call in enumerate(job.tool_calls or []):
        yield chunk(job, {"tool_calls": [{"index": index, **call}]})
    last = chunk(job, {}, job.finish_reason or "stop")
    last["switchyard"] = facts(job).model_dump()
    yield last
    if include_usage:
        tail = chunk(job, {})
        tail["choices"] = []
        tail["usage"] = usage(job).model_dump()
        yield tail


JOB_ERROR_CODES = {
    JobStatus.FAILED.value: (502, "provider_error"),
    JobStatus.EXPIRED.value: (504, "expired"),
    JobStatus.CANCELLED.value: (499, "cancelled"),
}


def output_line(job: Job) -> dict[str, Any]:
    """A batch output line: the request's ``chat.completion`` under ``response.body``."""
    body = chat_completion(job).model_dump(mode="json")
    response = {"status_code": 200, "request_id": job.id, "body": body}
    return {
        "id": f"batch_req_{job.id}",
        "custom_id": job.custom_id,
        "response": response,
        "error": None,
    }


def job_error_line(job: Job) -> dict[str, Any]:
    """A batch error line for a job that failed, expired or was cancelled."""
    status, code = JOB_ERROR_CODES.get(job.status, (500, job.status))
    message = job.error or job.status
    error = {"message": message, "type": code, "param": None, "code": code}
    response = {"status_code": status, "request_id": job.id, "body": {"error": error}}
    return {
        "id": f"batch_req_{job.id}",
        "custom_id": job.custom_id,
        "response": response,
        "error": {"code": code, "message": message},
    }


def rejected_error_line(item: dict[str, Any]) -> dict[str, Any]:
    """A batch error line for an input line refused before it ran."""
    return {
        "id": f"batch_req_line_{item.get('line')}",
        "custom_id": item.get("custom_id"),
        "response": None,
        "error": {"code": item.get("code", "invalid_request"), "message": item.get("message")},
    }


def output_file(jobs: Iterable[Job]) -> Iterator[bytes]:
    for job in jobs:
        if job.status == JobStatus.SUCCEEDED.value:
            yield _line(output_line(job))


def error_file(jobs: Iterable[Job], rejected: list[dict[str, Any]]) -> Iterator[bytes]:
    """Failed jobs and refused lines, merged in input order."""
    failed = (
        (job.batch_index or 0, job_error_line(job))
        for job in jobs
        if job.status != JobStatus.SUCCEEDED.value and JobStatus(job.status).final
    )
    refused = ((int(r.get("line", 1)) - 1, rejected_error_line(r)) for r in rejected)
    for _, line in heapq.merge(failed, refused, key=lambda pair: pair[0]):
        yield _line(line)


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()
