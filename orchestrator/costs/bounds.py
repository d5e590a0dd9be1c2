"""Upper bounds on what work may cost, computed before any of it runs (COSTS.md, budgets).

    job_upper_bound(plan, input_tokens, max_tokens)   one call on the dearest deployment
                                                      of the plan, all of max_tokens out
    pipeline_upper_bound(request, catalog)            the sum over its steps of the same,
                                                      each step's prompt bounded without
                                                      rendering it (below)

A later step's prompt is only known once the steps before it have answered, so
its size is bounded from its template: the template's own text, plus the job's
input for every ``{input}``, plus for every ``{steps.NAME.output}`` the most
that step may write (its ``max_tokens`` at ``OUTPUT_CHARS_PER_TOKEN``). The
sizes are multiplied out, never rendered, so a template that repeats
``{input}`` 200 times costs a count, not 200 copies (``rendered_chars``,
``step_prompt_chars``: admission's size check uses them too). A later step that
pins no tier or model is classified from its rendered prompt, which may land on
any tier, so its worst deployment is the dearest of the catalog.

These are admission's bounds: a call that would still cost more than its job
holds (a session's history, a repair, an escalation) is topped up or refused by
the worker's budget guard before it is made (``workers.guards.budget``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.pipeline_schemas import INPUT, PLACEHOLDER, StepSpec, step_names
from orchestrator.core.schemas import ImagePart, JobRequest, JSONSchemaFormat, ResponseFormat
from orchestrator.core.tiers import ALL_TIERS, Tier
from orchestrator.core.tokens import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    estimate_request_tokens,
    estimate_tokens,
    estimate_tools_tokens,
    image_tokens,
)
from orchestrator.routing.objective import estimate

OUTPUT_CHARS_PER_TOKEN = 8
"""What one generated token may take once rendered into a later step's prompt (English
averages about 4 characters a token; the simulator's words at most 12 with the space,
about 6 on average). A step's input beyond this is caught by the worker's guard."""
JSON_FORMAT_TOKENS = 64  # what an adapter may add to ask for JSON (as workers.context_hook)


def call_max_cost(deployment: Deployment, input_tokens: int, max_tokens: int) -> int:
    """One call's worst case on one deployment (micro-USD, rounded up)."""
    return math.ceil(estimate(deployment, input_tokens, max_tokens).max_cost_micro_usd)


def job_upper_bound(plan: Iterable[Deployment], input_tokens: int, max_tokens: int) -> int:
    """A job's worst case: all of ``max_tokens`` on the dearest deployment of its plan."""
    return max((call_max_cost(d, input_tokens, max_tokens) for d in plan), default=0)


def request_tokens(request: JobRequest, messages_tokens: int | None = None) -> int:
    """The prompt tokens a call of ``request`` is billed for, as estimated everywhere;
    ``messages_tokens``: its messages' estimate, if the router made it already."""
    if messages_tokens is None:
        messages_tokens = estimate_request_tokens(request.canonical_messages())
    tokens = messages_tokens + estimate_tools_tokens(request.tools)
    fmt = request.response_format
    if fmt is not None and fmt.is_json:
        tokens += JSON_FORMAT_TOKENS + estimate_tokens(fmt.model_dump_json())
    return tokens


@dataclass(frozen=True)
class TemplateCounts:
    """A template's placeholders, counted: its own text, ``{input}``s, each step's output."""

    literal_chars: int
    inputs: int
    outputs: dict[str, int]

    @classmethod
    def of(cls, template: str) -> TemplateCounts:
        placeholders, inputs, outputs = 0, 0, dict[str, int]()
        for match in PLACEHOLDER.finditer(template):
            placeholders += len(match.group(0))
            if match.group(1) == INPUT:
                inputs += 1
            else:
                outputs[match.group(2)] = outputs.get(match.group(2), 0) + 1
        return cls(len(template) - placeholders, inputs, outputs)

    def rendered_chars(self, input_chars: int, output_chars: Mapping[str, int]) -> int:
        """The rendered length; an output not in ``output_chars`` stays as written."""
        total = self.literal_chars + self.inputs * input_chars
        for name, count in self.outputs.items():
            size = output_chars.get(name)
            total += count * (size if size is not None else len(f"{{steps.{name}.output}}"))
        return total


def rendered_chars(template: str, *, input_chars: int, output_chars: Mapping[str, int]) -> int:
    """How long ``render(template, ...)`` would be, without rendering it.

    ``output_chars``: each earlier step's output length by name (as ``render``, a
    name missing from it leaves its placeholder as written).
    """
    return TemplateCounts.of(template).rendered_chars(input_chars, output_chars)


def step_prompt_chars(steps: Sequence[StepSpec], input_chars: int) -> list[int]:
    """Each step's rendered prompt length at most: earlier outputs at their largest."""
    largest = {name: s.max_tokens * OUTPUT_CHARS_PER_TOKEN for name, s in _named(steps)}
    return [rendered_chars(s.prompt, input_chars=input_chars, output_chars=largest) for s in steps]


@dataclass(frozen=True)
class StepBound:
    """One step's worst case: its prompt at most, the deployments it may reach, the cost."""

    index: int
    prompt_chars: int
    input_tokens: int
    deployments: tuple[str, ...]
    max_cost_micro_usd: int


@dataclass(frozen=True)
class PipelineBound:
    """A pipeline's worst case, step by step; admission reserves ``total_micro_usd``."""

    steps: tuple[StepBound, ...]

    @property
    def total_micro_usd(self) -> int:
        return sum(s.max_cost_micro_usd for s in self.steps)


def pipeline_upper_bound(
    request: JobRequest, catalog: Catalog, *, first_plan: Sequence[Deployment] | None = None
) -> PipelineBound:
    """What a pipeline job may cost at most: every step at its largest prompt, all of its
    ``max_tokens``, on the dearest deployment it may be routed to.

    ``first_plan``: step 0's plan as admission routed it (its prompt is final at
    admission, so its plan is known); otherwise step 0 is bounded like the others.
    """
    steps = request.steps or []
    input_chars = len(_input_text(request))
    chars = step_prompt_chars(steps, input_chars)
    images = [p for m in request.turns() for p in m.parts() if isinstance(p, ImagePart)]
    found: list[StepBound] = []
    for index, step in enumerate(steps):
        attach = step.attach_images if step.attach_images is not None else index == 0
        tokens = _step_tokens(index, step, chars[index], images if attach else [])
        if index == 0 and first_plan:
            reach: Sequence[Deployment] = first_plan
        else:
            reach = reachable(step, catalog, vision=attach and bool(images))
        worst = job_upper_bound(reach, tokens, step.max_tokens)
        names = tuple(d.name for d in reach)
        found.append(StepBound(index, chars[index], tokens, names, worst))
    return PipelineBound(tuple(found))


def reachable(step: StepSpec, catalog: Catalog, *, vision: bool) -> list[Deployment]:
    """Every deployment a step's plan may hold, whatever its rendered prompt says.

    A pinned model, and the tier's deployments: the pinned tier, else the model's
    first tier (the classifier's explicit override), else any tier at all (the
    classifier reads the rendered prompt). Deployments that cannot write
    ``max_tokens`` are never planned.
    """
    pinned = catalog.find(step.model) if step.model is not None else None
    if step.tier is not None:
        tiers: Sequence[Tier] = (step.tier,)
    elif pinned is not None:
        tiers = (pinned.tiers[0],)
    else:
        tiers = ALL_TIERS
    found = {d.name: d for t in tiers for d in catalog.for_tier(t)}
    if vision and pinned is not None and not pinned.vision:  # resolve_model's swap
        seeing = (d for d in catalog.deployments if d.model == pinned.model and d.vision)
        pinned = next(seeing, pinned)
    if pinned is not None:
        found[pinned.name] = pinned
    fitting = [d for d in found.values() if d.max_output_tokens >= step.max_tokens]
    return fitting or list(found.values())


def _named(steps: Sequence[StepSpec]) -> Iterable[tuple[str, StepSpec]]:
    return zip(step_names(steps), steps, strict=True)


def _input_text(request: JobRequest) -> str:
    """``orchestrator.pipelines.planner.input_text``: the job's prompt, or its turns' text."""
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.text() for m in request.turns() if m.text())


def _step_tokens(index: int, step: StepSpec, prompt_chars: int, images: Sequence[ImagePart]) -> int:
    """A step's prompt tokens at most, as ``request_tokens`` counts its rendered request
    (``orchestrator.pipelines.planner.step_request``)."""
    tokens = MESSAGE_OVERHEAD_TOKENS + -(-prompt_chars // CHARS_PER_TOKEN)
    tokens += sum(image_tokens(p.image_url.detail) for p in images)
    if step.system:
        tokens += MESSAGE_OVERHEAD_TOKENS + estimate_tokens(step.system)
    if step.json_schema is not None:
        named = {"name": f"step{index}", "schema": step.json_schema}
        fmt = ResponseFormat(type="json_schema", json_schema=JSONSchemaFormat.model_validate(named))
        tokens += JSON_FORMAT_TOKENS + estimate_tokens(fmt.model_dump_json())
    return tokens
