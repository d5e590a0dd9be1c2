"""OpenAI's wire shapes, as Switchyard's OpenAI-compatible routes speak them.

A chat request becomes a canonical ``JobRequest`` (``model`` is ``auto``,
``tier:<name>`` or a catalog model; ``developer`` messages are system messages;
``quality`` and ``callback_url`` are Switchyard's additions, sent by the openai
SDK through ``extra_body``). Answers, chunks, files and model lists follow
OpenAI's shapes; Switchyard's facts ride along in a ``switchyard`` field that
the SDK keeps in ``model_extra``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.core.messages import Message, ResponseFormat, Tool, ToolCall, ToolChoice
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier

AUTO_MODEL = "auto"
MESSAGE_FIELDS = frozenset(Message.model_fields)
TIER_MODEL_PREFIX = "tier:"


class StreamOptions(BaseModel):
    """``stream_options``: whether the last chunk carries the usage."""

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``; parameters Switchyard does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=128)
    tool_choice: ToolChoice | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="only 1 is supported")
    user: str | None = None
    metadata: dict[str, str] | None = None
    quality: float | None = Field(default=None, ge=0, le=1)
    callback_url: str | None = Field(default=None, max_length=2000)
    session_id: str | None = None  # validated by JobRequest (CONTEXT.md)
    cache: str | None = None  # off | read | write | on, validated by JobRequest

    @field_validator("messages", mode="before")
    @classmethod
    def _canonical_messages(cls, value: Any) -> Any:
        """``developer`` is ``system``; fields an SDK echoes back (``refusal``...) are dropped."""
        if not isinstance(value, list):
            return value
        return [_canonical_message(m) if isinstance(m, dict) else m for m in value]

    def job_payload(self, *, custom_id: str | None = None) -> dict[str, Any]:
        """The canonical job (as JSON) for this request; ``JobRequest`` validates it."""
        payload: dict[str, Any] = {
            "messages": [m.model_dump(mode="json", exclude_none=True) for m in self.messages],
            "max_tokens": self.max_completion_tokens or self.max_tokens or 4096,
            "custom_id": custom_id,
            "metadata": self.metadata or {},
        }
        if self.model.startswith(TIER_MODEL_PREFIX):
            payload["tier"] = self.model.removeprefix(TIER_MODEL_PREFIX)
        elif self.model != AUTO_MODEL:
            payload["model"] = self.model
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        optional: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": stop or None,
            "response_format": self.response_format,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "quality": self.quality,
            "callback_url": self.callback_url,
            "session_id": self.session_id,
            "cache": self.cache,
        }
        for key, value in optional.items():
            if isinstance(value, BaseModel):
                payload[key] = value.model_dump(mode="json", exclude_none=True, by_alias=True)
            elif isinstance(value, list):
                payload[key] = [
                    v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else v
                    for v in value
                ]
            elif value is not None:
                payload[key] = value
        return payload

    def to_job_request(self, *, custom_id: str | None = None) -> JobRequest:
        return JobRequest.model_validate(self.job_payload(custom_id=custom_id))


def _canonical_message(message: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in message.items() if k in MESSAGE_FIELDS}
    if kept.get("role") == "developer":
        kept["role"] = "system"
    return kept


class AssistantMessage(BaseModel):
    """The answer of a chat completion."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class ChatChoice(BaseModel):
    """The one choice Switchyard returns (``n`` is always 1)."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class PromptTokensDetails(BaseModel):
    """Prompt tokens read from the provider's cache."""

    cached_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    """Hidden reasoning tokens inside ``completion_tokens``."""

    reasoning_tokens: int = 0


class CompletionUsage(BaseModel):
    """OpenAI's usage block."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = Field(
        default_factory=CompletionTokensDetails
    )


class SwitchyardFacts(BaseModel):
    """Where a request went and what it cost (also sent as ``x-switchyard-*`` headers)."""

    job_id: str
    tier: str
    deployment: str | None = None
    provider: str | None = None
    cost_micro_usd: int = 0
    latency_ms: int | None = None
    cache_hit: bool = False


class ChatCompletion(BaseModel):
    """OpenAI's ``chat.completion`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
    switchyard: SwitchyardFacts


class ModelObject(BaseModel):
    """One entry of ``GET /v1/models``: ``auto``, a tier, or a catalog model."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    tiers: list[Tier] = Field(default_factory=list)


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelObject]


FilePurpose = Literal["batch", "batch_output"]


class FileObject(BaseModel):
    """OpenAI's File object; a batch's output and error files are ``batch_output``."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileList(BaseModel):
    """``GET /v1/files``, newest first."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileDeleted(BaseModel):
    """``DELETE /v1/files/{id}``."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
