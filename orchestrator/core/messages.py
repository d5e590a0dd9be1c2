"""Conversation content in canonical form: messages, text and image parts, tools.

The shape is OpenAI's chat format (what most clients already send), plus the
pieces other formats need to survive a switch of provider: Anthropic's
``cache_control`` marks on text parts. Every adapter converts from these models;
``orchestrator.core.schemas`` re-exports them.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.core.json_schemas import check_schema


class CacheControl(BaseModel):
    """A prompt-cache breakpoint (Anthropic's ``cache_control``); other formats ignore it.

    OpenAI and Gemini cache long prompt prefixes on their own; Anthropic caches
    only up to blocks marked like this, so the mark must survive a failover.
    """

    model_config = ConfigDict(extra="forbid")
    type: Literal["ephemeral"] = "ephemeral"
    ttl: Literal["5m", "1h"] | None = None


class TextPart(BaseModel):
    """A piece of text inside a message."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"] = "text"
    text: str
    cache_control: CacheControl | None = None


class ImageURL(BaseModel):
    """An image by URL or ``data:`` URI (base64)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] = "auto"

    def inline(self) -> tuple[str, str] | None:
        """(media type, base64 data) of a ``data:`` URI; None for a plain URL."""
        match = _DATA_URI.match(self.url)
        if match is None:
            return None
        return match.group(1) or "image/png", match.group(2)


_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?;base64,(.*)$", re.S)


class ImagePart(BaseModel):
    """An image inside a message; makes the request need a vision deployment."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(BaseModel):
    """The function a model chose to call, with its arguments as JSON text."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object (``{}`` if the model wrote invalid JSON)."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"value": value}


class ToolCall(BaseModel):
    """One tool call in an assistant turn; passed through to the caller, never executed."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDef(BaseModel):
    """A function the model may call: name, description and JSON-schema parameters."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class Tool(BaseModel):
    """A tool definition offered to the model (OpenAI's shape; adapters convert it)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"] = "function"
    function: FunctionDef


class ToolChoiceFunction(BaseModel):
    """The name of the one function the model must call."""

    model_config = ConfigDict(extra="forbid")
    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice`` that forces one named function."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"] = "function"
    function: ToolChoiceFunction


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class JSONSchemaFormat(BaseModel):
    """A JSON schema the answer must follow (structured output)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    name: str = Field(default="response", pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _bounded_local_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Small, self-contained, acyclic and valid, or refused (``core.json_schemas``)."""
        check_schema(value)
        return value


class ResponseFormat(BaseModel):
    """Plain text, any JSON object, or JSON that follows a schema."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_when_needed(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format json_schema needs 'json_schema'")
        return self

    @property
    def is_json(self) -> bool:
        return self.type != "text"


class Message(BaseModel):
    """One turn of a conversation: system, user, assistant (maybe with tool calls) or tool."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs 'tool_call_id'")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry 'tool_calls'")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs 'content'")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def parts(self) -> list[TextPart | ImagePart]:
        """The content as a list of parts (a bare string is one text part)."""
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(text=self.content)] if self.content else []
        return list(self.content)

    def image_count(self) -> int:
        if not isinstance(self.content, list):
            return 0
        return sum(1 for p in self.content if isinstance(p, ImagePart))
