"""Canonical request and response models shared by the API, the SDK and the workers.

A request is a list of messages whose content is text or a list of text and
image parts (OpenAI's shape, which every adapter converts from; the message
models live in ``orchestrator.core.messages``), plus generation parameters, a JSON
response format and tool definitions. Responses are views of rows in the
store; money is integer micro-USD.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.core.messages import (
    CacheControl,
    ContentPart,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageURL,
    JSONSchemaFormat,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceFunction,
)
from orchestrator.core.pipeline_schemas import MAX_STEPS, StepSpec, Strategy, check_steps
from orchestrator.core.tiers import Tier


class Priority(StrEnum):
    """Interactive work is served before batch work on the same queue."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


CacheMode = Literal["off", "read", "write", "on"]
"""How a request uses the response cache: ``read`` may answer from it, ``write`` stores
the answer, ``on`` does both (and coalesces identical requests in flight)."""


Objective = Literal["cost", "latency", "quality", "balanced"]
"""What a route plan optimises (COSTS.md): expected cost, predicted latency, model
strength, or a blend of cost and latency."""


class JobRequest(BaseModel):
    """What a client asks for: messages (or a bare prompt) and generation parameters."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    system: str | None = Field(default=None, min_length=1)
    tier: Tier | None = None
    model: str | None = None
    quality: float | None = Field(
        default=None, ge=0, le=1, description="share of strong-model calls: 0 cheapest, 1 strongest"
    )
    max_tokens: int = Field(default=512, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: list[str] | None = Field(default=None, max_length=4)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=128)
    tool_choice: ToolChoice | None = None
    custom_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)
    callback_url: str | None = Field(
        default=None, max_length=2000, description="POSTed a signed notification when it ends"
    )
    stream: bool = Field(
        default=False,
        description="the worker relays the answer's text as it is generated (set by "
        "POST /v1/chat/completions with stream: true)",
    )
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="a conversation kept by Switchyard: send only the new turn (CONTEXT.md)",
    )
    cache: CacheMode | None = Field(
        default=None, description="response cache: off, read, write or on (CONTEXT.md)"
    )

    steps: list[StepSpec] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,  # validation stops at the first step past it
        description="a pipeline: steps run in order (PIPELINES.md)",
    )
    strategy: Strategy | None = Field(
        default=None, description="cascade: cheapest first, escalate when a check fails"
    )
    objective: Objective | None = Field(
        default=None, description="order the route plan by cost, latency, quality or balanced"
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="refuse deployments whose worst-case cost exceeds this",
    )
    max_latency_ms: int | None = Field(
        default=None, gt=0, description="refuse deployments predicted slower than this"
    )
    completion_window: Literal["24h"] | None = Field(
        default=None,
        description="the job may take this long: it may go by the provider's batch API at"
        " about half price (COSTS.md)",
    )

    @model_validator(mode="after")
    def _one_input(self) -> JobRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self

    @field_validator("steps")
    @classmethod
    def _steps_refer_back(cls, steps: list[StepSpec] | None) -> list[StepSpec] | None:
        if steps is not None:
            check_steps(steps)
        return steps

    def canonical_messages(self) -> list[Message]:
        """Every turn in order; ``system`` (if given) first, ``prompt`` as one user turn."""
        head = [Message(role="system", content=self.system)] if self.system else []
        if self.messages is not None:
            return head + self.messages
        assert self.prompt is not None
        return [*head, Message(role="user", content=self.prompt)]

    def system_prompt(self) -> str | None:
        """All system text, for formats that carry it outside the turns (Anthropic, Gemini)."""
        texts = [m.text() for m in self.canonical_messages() if m.role == "system"]
        return "\n\n".join(t for t in texts if t) or None

    def turns(self) -> list[Message]:
        """The conversation without its system messages."""
        return [m for m in self.canonical_messages() if m.role != "system"]

    def prompt_text(self) -> str:
        return "\n".join(m.text() for m in self.canonical_messages())

    def image_count(self) -> int:
        return sum(m.image_count() for m in self.canonical_messages())


class Usage(BaseModel):
    """Tokens a provider reported for one call, normalised across wire formats.

    ``input_tokens`` counts every prompt token, the cached ones included (OpenAI's
    ``prompt_tokens``; Anthropic's input + cache-creation + cache-read tokens);
    ``cached_input_tokens`` and ``cache_write_input_tokens`` are the parts of it
    read from and written to the provider's prompt cache. ``output_tokens``
    counts every generated token; ``reasoning_tokens`` is the hidden part of it.
    """

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_input_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)

    @property
    def uncached_input_tokens(self) -> int:
        """Prompt tokens billed at the plain input price."""
        cached = self.cached_input_tokens + self.cache_write_input_tokens
        return max(0, self.input_tokens - cached)


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class Completion(BaseModel):
    """A provider's answer in canonical form: text, tool calls, why it stopped, usage."""

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    provider_model: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


class JobStatus(StrEnum):
    """Life of a job (see RELIABILITY.md for every transition).

    ``queued`` (waiting for a worker, perhaps until ``next_attempt_at``) ->
    ``running`` (a worker holds its lease) -> ``retrying`` (a call failed; it
    waits for its backoff) -> ... -> one of the final states ``succeeded``,
    ``failed``, ``cancelled`` or ``expired`` (not final by its deadline).
    ``failed``, ``expired`` and ``cancelled`` jobs can be re-driven.
    """

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)


class RoutingStep(BaseModel):
    """One decision the router took for a job (tier, strong/weak), with its numbers and reasons."""

    step: str
    choice: str
    scorer: str
    score: float | None = None
    threshold: float | None = None
    quality: float | None = None
    reasons: list[str] = Field(default_factory=list)
    # the tier step of the learned classifier: every tier's probability
    probabilities: dict[str, float] | None = None


class StepView(BaseModel):
    """One step of a pipeline job: where it ran and what it cost (PIPELINES.md)."""

    index: int
    name: str
    job_id: str | None = None
    status: JobStatus | None = None  # None: not created yet
    tier: Tier | None = None
    deployment: str | None = None
    cost_micro_usd: int = 0
    attempts: int = 0
    error: str | None = None


class JobView(BaseModel):
    """A job as the API shows it to its tenant."""

    id: str
    status: JobStatus
    tier: Tier
    tier_reasons: list[str]
    plan: list[str]
    routing: list[RoutingStep] = Field(default_factory=list)
    batch_id: str | None = None
    custom_id: str | None = None
    deployment: str | None = None
    provider: str | None = None
    model: str | None = None
    output: str | None = None
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_micro_usd: int = 0
    latency_ms: int | None = None
    attempts: int = 0
    cache_hit: bool = False
    error: str | None = None
    created_at: datetime
    deadline_at: datetime | None = None
    next_attempt_at: datetime | None = None
    finished_at: datetime | None = None
    parent_job_id: str | None = None
    current_step: int | None = None
    steps: list[StepView] | None = None


__all__ = [
    "FINAL_STATUSES",
    "CacheControl",
    "CacheMode",
    "Completion",
    "ContentPart",
    "FinishReason",
    "FunctionCall",
    "FunctionDef",
    "ImagePart",
    "ImageURL",
    "JSONSchemaFormat",
    "JobRequest",
    "JobStatus",
    "JobView",
    "Message",
    "NamedToolChoice",
    "Objective",
    "Priority",
    "ResponseFormat",
    "StepSpec",
    "StepView",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolChoiceFunction",
    "Usage",
]
