"""The optional judge: grade a sampled share of an experiment's answers with a reasoning model.

For an experiment with ``judge_share > 0``, a succeeded job whose id hashes under
that share is re-submitted as a *grading job*: a normal job of the same tenant on
the ``reasoning`` tier, whose prompt is the original request and answer and whose
system prompt is ``RUBRIC``. Its JSON answer's ``score`` (clamped to [0, 1]) is
stored as feedback with source ``judge`` for the original job, and counts in the
arm's ``quality`` next to users' scores. Grading jobs are never enrolled in an
experiment themselves, and their cost is the tenant's like any job's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from orchestrator.core.messages import JSONSchemaFormat, ResponseFormat
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.experiments.assignment import JUDGE_KEY

JUDGE_PREFIX = "switchyard-judge:"
MAX_CHARS = 20_000
RUBRIC = """You grade one answer of an AI assistant to one request.
Score it from 0 to 1:
  1.0   correct, complete, and follows every instruction in the request
  0.75  correct, with small omissions or style problems
  0.5   partly correct, or correct but missing an important part
  0.25  mostly wrong, or ignores the request's instructions
  0.0   wrong, harmful, empty, or a refusal of a reasonable request
Judge only the answer's content; ignore its length unless the request sets one.
Reply with JSON only: {"score": <number 0..1>, "reason": "<one sentence>"}."""
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
}


def sampled(job_id: str, share: float) -> bool:
    """Whether ``job_id`` is in the graded share (deterministic in the id)."""
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"judge:{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def grading_request(job_id: str, request: dict[str, Any], answer: str) -> JobRequest:
    """The grading job for one answer: the rubric, the request and the answer."""
    asked = JobRequest.model_validate(request).prompt_text()[:MAX_CHARS]
    prompt = f"## Request\n{asked}\n\n## Answer\n{answer[:MAX_CHARS]}"
    return JobRequest(
        system=RUBRIC,
        prompt=prompt,
        tier=Tier.REASONING,
        max_tokens=1024,
        response_format=ResponseFormat(
            type="json_schema",
            json_schema=JSONSchemaFormat.model_validate({"name": "grade", "schema": SCHEMA}),
        ),
        custom_id=f"{JUDGE_PREFIX}{job_id}",
        metadata={JUDGE_KEY: job_id},
    )


def graded_job(custom_id: str | None) -> str | None:
    """The job a grading job graded (from its ``custom_id``), else None."""
    if custom_id is None or not custom_id.startswith(JUDGE_PREFIX):
        return None
    return custom_id[len(JUDGE_PREFIX) :]


def parse_score(output: str | None) -> float | None:
    """The grade in a grading job's answer, clamped to [0, 1]; None if it has none."""
    try:
        value = json.loads(output or "")["score"]
        return min(1.0, max(0.0, float(value)))
    except (ValueError, TypeError, KeyError):
        return None
