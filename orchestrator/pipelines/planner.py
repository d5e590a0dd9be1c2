"""Pipelines and cascades on the control plane: routing a job, and building step rows.

A pipeline job (a request with ``steps``) is stored as a *parent* row that is
never published, plus one job row per step, created one at a time: the
dispatcher writes the parent and step 0; the worker that finishes step N writes
step N+1 in the same transaction (``workers.steps``). Each step is an ordinary
job (``parent_job_id``, ``step_index``) routed on its own tier queue through the
usual lease, attempt loop and ledger. See PIPELINES.md.

A cascade (``strategy: cascade``) keeps the router's tier but orders the tier's
deployments cheapest first (``CascadeDecision``); the workers' output checks
(``workers.checks``) escalate to the next deployment when an answer fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.core.catalog import Catalog
from orchestrator.core.errors import NoRoute, ValidationFailed
from orchestrator.core.pipeline_schemas import render, rendered_size, step_names
from orchestrator.core.schemas import (
    ImagePart,
    JobRequest,
    JobStatus,
    JSONSchemaFormat,
    Message,
    ResponseFormat,
    TextPart,
)
from orchestrator.routing import RouteDecision, StrengthPolicy, plan_route, route
from orchestrator.store import repo
from orchestrator.store.bulk import Inserts
from orchestrator.store.models import new_id, utcnow

CASCADE = "cascade"


@dataclass(frozen=True)
class CascadeDecision(RouteDecision):
    """A route decision whose plan is the tier cheapest first, escalating on failed checks."""

    def record(self) -> list[dict[str, Any]]:
        names = [d.name for d in self.plan]
        cascade = {
            "step": "strategy",
            "choice": CASCADE,
            "scorer": "cascade",
            "score": None,
            "threshold": None,
            "quality": None,
            "reasons": [
                f"cheapest first: {' -> '.join(names)}",
                "escalate to the next deployment when an answer fails a check"
                " (schema, refusal, low quality)",
            ],
        }
        return [*super().record(), cascade]


def route_request(
    request: JobRequest, catalog: Catalog, policy: StrengthPolicy | None = None
) -> RouteDecision:
    """Route one request; a cascade keeps the tier and plans its deployments cheapest first."""
    decision = route(request, catalog, policy)
    if request.strategy != CASCADE:
        return decision
    plan = plan_route(request, decision.tier, catalog, input_tokens=decision.estimated_input_tokens)
    fields = {k: getattr(decision, k) for k in decision.__dataclass_fields__}
    return CascadeDecision(**{**fields, "plan": plan})


def route_job(
    request: JobRequest, catalog: Catalog, policy: StrengthPolicy | None = None
) -> RouteDecision:
    """Route a job: a pipeline is routed as its first step (every step's model is checked)."""
    if not request.steps:
        return route_request(request, catalog, policy)
    for i in range(1, len(request.steps)):
        _check_step(request, i, catalog, policy)
    return _check_step(request, 0, catalog, policy)


def _check_step(
    request: JobRequest, index: int, catalog: Catalog, policy: StrengthPolicy | None
) -> RouteDecision:
    blank = {name: "" for name in step_names(request.steps or [])}
    try:
        return route_request(step_request(request, index, blank), catalog, policy)
    except NoRoute as exc:
        raise ValidationFailed(f"steps[{index}]", str(exc)) from exc
    except ValidationFailed as exc:
        raise ValidationFailed(f"steps[{index}].{exc.field}", exc.message) from exc


def input_text(request: JobRequest) -> str:
    """The job's input as text: its prompt, or the text of its non-system messages."""
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.text() for m in request.turns() if m.text())


def input_images(request: JobRequest) -> list[ImagePart]:
    return [p for m in request.turns() for p in m.parts() if isinstance(p, ImagePart)]


def check_prompt_sizes(request: JobRequest, max_chars: int) -> None:
    """Refuse a step whose prompt would render past ``max_chars`` with the job's input
    (earlier outputs blank, as admission routes them), counted without rendering it."""
    steps = request.steps
    if not steps:
        return
    blank = dict.fromkeys(step_names(steps), 0)
    input_chars = len(input_text(request))
    for index, step in enumerate(steps):
        _check_size(step.prompt, index, input_chars, blank, max_chars)


def _check_size(
    template: str, index: int, input_chars: int, output_chars: Mapping[str, int], max_chars: int
) -> None:
    size = rendered_size(template, input_chars=input_chars, output_chars=output_chars)
    if size > max_chars:
        why = f"would render to {size} characters, over the limit of {max_chars}"
        raise ValidationFailed(f"steps[{index}].prompt", why)


def step_request(
    parent: JobRequest, index: int, outputs: Mapping[str, str], *, max_chars: int | None = None
) -> JobRequest:
    """Step ``index`` of ``parent`` as a job request, its template filled from ``outputs``.

    With ``max_chars``, a prompt that would render longer is refused (``ValidationFailed``)
    before any of it is built.
    """
    step = (parent.steps or [])[index]
    given = input_text(parent)
    if max_chars is not None:
        lengths = {name: len(text) for name, text in outputs.items()}
        _check_size(step.prompt, index, len(given), lengths, max_chars)
    text = render(step.prompt, input_text=given, outputs=outputs)
    attach = step.attach_images if step.attach_images is not None else index == 0
    images = input_images(parent) if attach else []
    fmt = None
    if step.json_schema is not None:
        schema = JSONSchemaFormat.model_validate(
            {"name": f"step{index}", "schema": step.json_schema}
        )
        fmt = ResponseFormat(type="json_schema", json_schema=schema)
    body: dict[str, Any] = {"prompt": text} if not images else {}
    if images:
        body["messages"] = [Message(role="user", content=[TextPart(text=text), *images])]
    return JobRequest(
        **body,
        system=step.system,
        tier=step.tier,
        model=step.model,
        quality=step.quality,
        max_tokens=step.max_tokens,
        temperature=step.temperature,
        response_format=fmt,
        strategy=step.strategy or parent.strategy,
        metadata=dict(parent.metadata),
    )


def routing_columns(decision: RouteDecision) -> dict[str, Any]:
    """A routing decision as the job columns that store it."""
    return {
        "tier": decision.tier.value,
        "tier_reasons": list(decision.reasons),
        "plan": [d.name for d in decision.plan],
        "routing": decision.record(),
    }


def step_row(
    parent: Mapping[str, Any], index: int, request: JobRequest, routing: Mapping[str, Any]
) -> dict[str, Any]:
    """A queued job row for step ``index`` of ``parent`` (its row's columns), routed as given."""
    return {
        "id": new_id("job"),
        "tenant_id": parent["tenant_id"],
        "parent_job_id": parent["id"],
        "step_index": index,
        "status": JobStatus.QUEUED.value,
        **{k: routing[k] for k in ("tier", "tier_reasons", "plan", "routing")},
        "priority": parent["priority"],
        "request": request.model_dump(mode="json", exclude_none=True),
        "created_at": utcnow(),
        "deadline_at": parent["deadline_at"],
    }


def split_pipelines(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows to insert: a pipeline's row becomes its parent (running, unpublished) + step 0.

    Its tier and routing came from routing step 0 (``route_job``), so step 0 keeps
    them; the parent keeps the tier for display and says it is a pipeline.
    """
    out: list[dict[str, Any]] = []
    for row in rows:
        steps = row["request"].get("steps")
        if not steps:
            out.append(row)
            continue
        request = JobRequest.model_validate(row["request"])
        child = step_row(row, 0, step_request(request, 0, {}), row)
        names = ", ".join(step_names(request.steps or []))
        parent = dict(row)
        parent.update(
            status=JobStatus.RUNNING.value,
            plan=[],
            tier_reasons=[f"pipeline of {len(steps)} steps: {names}"],
            started_at=row["created_at"],
        )
        out += [parent, child]
    return out


def insert_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert job rows, parents before the steps that point at them."""
    _parents_first(lambda part: repo.insert_jobs(session, rows=part), rows)


@contextmanager
def row_inserts(session: Session) -> Iterator[Inserts]:
    """``insert(rows)``, as ``insert_rows``, for rows made a part at a time: each part is
    inserted while the next is made (``repo.job_inserts``), in the session's transaction."""
    with repo.job_inserts(session) as insert:
        yield lambda rows: _parents_first(insert, rows)


def _parents_first(insert: Inserts, rows: Sequence[dict[str, Any]]) -> None:
    insert([r for r in rows if not r.get("parent_job_id")])
    insert([r for r in rows if r.get("parent_job_id")])


def publishable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that need a message: everything but pipeline parents."""
    return [r for r in rows if r["status"] == JobStatus.QUEUED.value]


__all__ = [
    "CascadeDecision",
    "check_prompt_sizes",
    "input_text",
    "insert_rows",
    "publishable",
    "route_job",
    "route_request",
    "routing_columns",
    "row_inserts",
    "split_pipelines",
    "step_request",
    "step_row",
]
