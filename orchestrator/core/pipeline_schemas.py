"""Pipelines and cascades in a request: the steps of a multi-step job and its strategy.

A pipeline job carries ``steps``: each step has a prompt template, and may pin a
tier or model, declare a JSON Schema its answer must follow, and constrain its
call (``max_tokens``, ``temperature``, ``quality``, ``strategy``). Templates may
refer to the job's input and to earlier steps' outputs:

    {input}                  the job's text (its ``prompt``, or its messages' text)
    {steps.NAME.output}      the output of the earlier step called NAME

Anything else in braces is left as written (JSON examples in a prompt are safe);
rendering is plain substitution, never ``eval`` or ``str.format``.
See PIPELINES.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.core.json_schemas import check_schema
from orchestrator.core.tiers import Tier

Strategy = Literal["single", "cascade"]
"""``single``: the route plan as routed (fallbacks on errors only). ``cascade``: the tier's
deployments cheapest first, escalating to the next when an answer fails a check."""

MAX_STEPS = 20
PLACEHOLDER = re.compile(r"\{(input|steps\.([A-Za-z0-9_-]{1,64})\.output)\}")
INPUT = "input"


class StepSpec(BaseModel):
    """One step of a pipeline job: a prompt template and how its call is routed and checked."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    prompt: str = Field(min_length=1, max_length=200_000)
    system: str | None = Field(default=None, min_length=1)
    tier: Tier | None = None
    model: str | None = None
    json_schema: dict[str, Any] | None = Field(
        default=None, description="the step's answer must be JSON valid against this schema"
    )
    max_tokens: int = Field(default=512, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    quality: float | None = Field(default=None, ge=0, le=1)
    strategy: Strategy | None = None
    attach_images: bool | None = Field(
        default=None, description="send the job's images with this step (default: first step)"
    )

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_schema(
                value
            )  # small, self-contained, acyclic, valid: orchestrator.core.json_schemas
        return value

    def references(self) -> list[str]:
        """The earlier steps this step's prompt reads, by name."""
        return [m.group(2) for m in PLACEHOLDER.finditer(self.prompt) if m.group(2)]


def step_names(steps: Sequence[StepSpec]) -> list[str]:
    """Every step's name; an unnamed step is called ``step<index>`` (``step0``, ...)."""
    return [s.name or f"step{i}" for i, s in enumerate(steps)]


def check_steps(steps: Sequence[StepSpec]) -> None:
    """Names are unique and each template refers only to earlier steps (ValueError otherwise)."""
    if len(steps) > MAX_STEPS:
        raise ValueError(f"at most {MAX_STEPS} steps")
    names = step_names(steps)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ValueError(f"steps[{i}].name: {name!r} is used by an earlier step")
        for ref in steps[i].references():
            if ref not in names[:i]:
                raise ValueError(
                    f"steps[{i}].prompt: {{steps.{ref}.output}} names no earlier step"
                    f" (earlier: {names[:i] or 'none'})"
                )


def rendered_size(template: str, *, input_chars: int, output_chars: Mapping[str, int]) -> int:
    """How long ``render`` would make ``template``, counted without rendering it.

    ``output_chars``: each earlier step's output length by name (as in ``render``, a
    name missing from it leaves its placeholder as written).
    """
    size = len(template)
    for match in PLACEHOLDER.finditer(template):
        name = match.group(2)
        fill = input_chars if name is None else output_chars.get(name, len(match.group(0)))
        size += fill - len(match.group(0))
    return size


def render(template: str, *, input_text: str, outputs: Mapping[str, str]) -> str:
    """The template with ``{input}`` and ``{steps.NAME.output}`` filled in, in one pass."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) == INPUT:
            return input_text
        return outputs.get(match.group(2), match.group(0))

    return PLACEHOLDER.sub(fill, template)
