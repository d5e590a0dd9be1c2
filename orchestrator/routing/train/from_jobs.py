"""Labelled prompts from a cluster's own jobs, for ``switchyard route train --from-jobs``.

Two kinds of job carry a tier someone stands behind:

    explicit   the client named a tier (``"tier": "code"``): that tier is the label
    feedback   the answer got ``POST /v1/jobs/{id}/feedback`` scores averaging at
               least ``min_score``: the tier it was routed to served it well

Feedback stores a score, not a tier, so a badly scored job says the tier was wrong
but not which one was right: such jobs are counted and left out. Jobs with images
(vision is a rule) and pipeline parents (no prompt of their own) are left out too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.routing.train.tier_data import TIERS, Labelled, Read, dedupe
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, JobFeedback, Tenant

MIN_SCORE = 0.5


def _labelled(request: dict[str, Any], tier: str, source: str, found: Read) -> None:
    try:
        parsed = JobRequest.model_validate(request)
    except ValidationError:
        found.skipped["unreadable request"] += 1
        return
    if parsed.image_count() or parsed.steps:
        found.skipped["images or pipeline"] += 1
        return
    text = parsed.prompt_text()
    if tier not in {t.value for t in TIERS} or not text.strip():
        found.skipped[f"tier {tier}"] += 1
        return
    found.rows.append(Labelled(text, Tier(tier), source))


def _explicit(session: Any, tenant_id: str | None) -> Iterator[tuple[dict[str, Any], str]]:
    pinned = Job.request["tier"].as_string()
    query = select(Job.request, pinned).where(pinned.is_not(None), Job.parent_job_id.is_(None))
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    for request, tier in session.execute(query):
        yield request, str(tier)


def _scored(session: Any, tenant_id: str | None) -> Iterator[tuple[dict[str, Any], str, float]]:
    scores = (
        select(JobFeedback.job_id, func.avg(JobFeedback.score).label("score"))
        .group_by(JobFeedback.job_id)
        .subquery()
    )
    query = select(Job.request, Job.tier, scores.c.score).join(scores, scores.c.job_id == Job.id)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    for request, tier, score in session.execute(query):
        yield request, str(tier), float(score)


def read_jobs(engine: Engine, *, tenant: str | None = None, min_score: float = MIN_SCORE) -> Read:
    """Labelled prompts from ``tenant``'s jobs (every tenant's if None)."""
    found = Read()
    with session_scope(engine) as session:
        tenant_id = None
        if tenant is not None:
            tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
            if tenant_id is None:
                from orchestrator.core.errors import NotFound

                raise NotFound(f"no tenant {tenant!r}")
        for request, tier in _explicit(session, tenant_id):
            _labelled(request, tier, "jobs:explicit tier", found)
        for request, tier, score in _scored(session, tenant_id):
            if request.get("tier") is not None:
                continue  # already counted as explicit
            if score < min_score:
                found.skipped["low feedback score (right tier unknown)"] += 1
                continue
            _labelled(request, tier, "jobs:feedback", found)
    found.rows = dedupe(found.rows, found.skipped)
    found.skipped = Counter(dict(sorted(found.skipped.items())))
    return found
