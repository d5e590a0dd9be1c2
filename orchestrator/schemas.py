"""Canonical request and response models shared by the API, the SDK and the workers.

A request is a list of messages whose content is text or a list of text and
image parts (OpenAI's shape, which every adapter converts from). Responses are
views of rows in the store; money is integer micro-USD.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.tiers import Tier


class TextPart(BaseModel):
    """A piece of text inside a message."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"] = "text"
    text: str


class ImageURL(BaseModel):
    """An image by URL or ``data:`` URI (base64)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] = "auto"


class ImagePart(BaseModel):
    """An image inside a message; makes the request need a vision deployment."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def image_count(self) -> int:
        if isinstance(self.content, str):
            return 0
        return sum(1 for p in self.content if isinstance(p, ImagePart))


class Priority(StrEnum):
    """Interactive work is served before batch work on the same queue."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


class JobRequest(BaseModel):
    """What a client asks for: messages (or a bare prompt) and generation parameters."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    tier: Tier | None = None
    model: str | None = None
    max_tokens: int = Field(default=512, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: list[str] | None = Field(default=None, max_length=4)
    custom_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_input(self) -> JobRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self

    def canonical_messages(self) -> list[Message]:
        if self.messages is not None:
            return self.messages
        assert self.prompt is not None
        return [Message(role="user", content=self.prompt)]

    def prompt_text(self) -> str:
        return "\n".join(m.text() for m in self.canonical_messages())

    def image_count(self) -> int:
        return sum(m.image_count() for m in self.canonical_messages())


class Usage(BaseModel):
    """Tokens a provider reported for one call."""

    input_tokens: int = 0
    output_tokens: int = 0


class Completion(BaseModel):
    """A provider's answer in canonical form."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = Field(default_factory=Usage)
    provider_model: str | None = None


class JobStatus(StrEnum):
    """Life of a job; ``succeeded`` and ``failed`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobView(BaseModel):
    """A job as the API shows it to its tenant."""

    id: str
    status: JobStatus
    tier: Tier
    tier_reasons: list[str]
    plan: list[str]
    batch_id: str | None = None
    custom_id: str | None = None
    deployment: str | None = None
    provider: str | None = None
    model: str | None = None
    output: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_micro_usd: int = 0
    latency_ms: int | None = None
    attempts: int = 0
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class BatchCounts(BaseModel):
    """How many of a batch's jobs are in each state."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class BatchStatus(StrEnum):
    """A batch is ``in_progress`` until every job is final."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class BatchView(BaseModel):
    """A batch as the API shows it to its tenant."""

    id: str
    status: BatchStatus
    counts: BatchCounts
    cost_micro_usd: int = 0
    created_at: datetime
    completed_at: datetime | None = None
