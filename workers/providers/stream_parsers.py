"""One ``StreamParser`` per wire format: events in, the non-streamed answer body out.

- OpenAI (``stream: true``, ``stream_options.include_usage``): ``chat.completion.chunk``
  events whose ``choices[0].delta`` carries ``content``, ``refusal`` or
  ``tool_calls`` pieces (merged by ``index``); the finish reason comes in the
  last choice chunk, the usage in a chunk with empty ``choices``; ``data: [DONE]``
  closes it. An ``{"error": ...}`` event is a failure.
- Anthropic: ``message_start`` (the message, input usage), per block
  ``content_block_start`` / ``content_block_delta`` (``text_delta``,
  ``input_json_delta``, thinking deltas ignored) / ``content_block_stop``,
  ``message_delta`` (stop reason, output usage), ``message_stop``; an ``error``
  event is a failure (``overloaded_error`` as a 529, and so on).
- Gemini (``:streamGenerateContent?alt=sse``): each event is a whole
  ``GenerateContentResponse`` holding the next parts; the last has the
  ``finishReason``, and ``usageMetadata`` is the latest seen.
"""

from __future__ import annotations

import json
from typing import Any

from workers.providers.sse import Event, StreamFailed
from workers.providers.transport import Malformed

ANTHROPIC_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "billing_error": 402,
}


def _object(data: str) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise Malformed("an event is not a JSON object")
    return value


class OpenAIStreamParser:
    """Merges ``chat.completion.chunk`` events into one ``chat.completion`` body."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: Any = None
        self.model: Any = None
        self.done = False

    @property
    def complete(self) -> bool:
        return self.done or self.finish is not None

    def feed(self, event: Event) -> str:
        if event.data.strip() == "[DONE]":
            self.done = True
            return ""
        chunk = _object(event.data)
        if "error" in chunk:
            raise StreamFailed(500, chunk)
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        self.finish = choice.get("finish_reason") or self.finish
        delta = choice.get("delta") or {}
        for piece in delta.get("tool_calls") or ():
            self._merge_call(piece)
        if isinstance(delta.get("refusal"), str):
            self.refusal.append(delta["refusal"])
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text.append(content)
            return content
        return ""

    def _merge_call(self, piece: dict[str, Any]) -> None:
        call = self.calls.setdefault(int(piece.get("index", 0)), {"id": "", "name": "", "args": ""})
        call["id"] = piece.get("id") or call["id"]
        function = piece.get("function") or {}
        call["name"] = function.get("name") or call["name"]
        call["args"] += function.get("arguments") or ""

    def result(self) -> dict[str, Any]:
        calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["args"]},
            }
            for _, c in sorted(self.calls.items())
        ]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text)}
        if calls:
            message["tool_calls"] = calls
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        choice = {"index": 0, "message": message, "finish_reason": self.finish}
        return {"model": self.model, "choices": [choice], "usage": self.usage}


class AnthropicStreamParser:
    """Rebuilds a Messages ``message`` from its event stream."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, str] = {}
        self.done = False

    @property
    def complete(self) -> bool:
        return self.done

    def feed(self, event: Event) -> str:
        data = _object(event.data)
        kind = data.get("type") or event.name
        if kind == "error":
            error = data.get("error") or {}
            raise StreamFailed(ANTHROPIC_ERROR_STATUS.get(str(error.get("type")), 500), data)
        if kind == "message_start":
            self.message = dict(data["message"])
        elif kind == "content_block_start":
            self.blocks[int(data["index"])] = dict(data["content_block"])
        elif kind == "content_block_delta":
            return self._delta(int(data["index"]), data["delta"])
        elif kind == "content_block_stop":
            self._close(int(data["index"]))
        elif kind == "message_delta":
            self._message().update(data.get("delta") or {})
            usage = self._message().setdefault("usage", {})
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.done = True
        return ""

    def _message(self) -> dict[str, Any]:
        if self.message is None:
            raise Malformed("an event came before message_start")
        return self.message

    def _delta(self, index: int, delta: dict[str, Any]) -> str:
        block = self.blocks[index]
        if delta.get("type") == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
            return str(delta["text"])
        if delta.get("type") == "input_json_delta":
            self.partial_json[index] = self.partial_json.get(index, "") + delta["partial_json"]
        return ""  # thinking and signature deltas are not the answer

    def _close(self, index: int) -> None:
        block = self.blocks[index]
        if block.get("type") == "tool_use":
            raw = self.partial_json.get(index, "")
            block["input"] = json.loads(raw) if raw.strip() else block.get("input") or {}

    def result(self) -> dict[str, Any]:
        message = dict(self._message())
        message["content"] = [block for _, block in sorted(self.blocks.items())]
        return message


class GeminiStreamParser:
    """Merges ``GenerateContentResponse`` events into one response."""

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.finish: Any = None
        self.usage: Any = None
        self.model: Any = None
        self.feedback: Any = None

    @property
    def complete(self) -> bool:
        blocked = isinstance(self.feedback, dict) and self.feedback.get("blockReason")
        return self.finish is not None or bool(blocked)

    def feed(self, event: Event) -> str:
        data = _object(event.data)
        if "error" in data:
            error = data["error"] if isinstance(data["error"], dict) else {}
            code = error.get("code")
            raise StreamFailed(code if isinstance(code, int) and code >= 400 else 500, data)
        self.usage = data.get("usageMetadata") or self.usage
        self.model = data.get("modelVersion") or self.model
        self.feedback = data.get("promptFeedback") or self.feedback
        candidates = data.get("candidates") or []
        if not candidates:
            return ""
        candidate = candidates[0]
        self.finish = candidate.get("finishReason") or self.finish
        parts = (candidate.get("content") or {}).get("parts") or []
        self.parts.extend(p for p in parts if isinstance(p, dict))
        return "".join(
            p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
        )

    def result(self) -> dict[str, Any]:
        body: dict[str, Any] = {"usageMetadata": self.usage, "modelVersion": self.model}
        if self.feedback is not None:
            body["promptFeedback"] = self.feedback
        if self.parts or self.finish is not None:
            content = {"parts": self.parts, "role": "model"}
            body["candidates"] = [{"content": content, "finishReason": self.finish}]
        return body
