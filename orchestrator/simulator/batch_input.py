"""OpenAI's batch input file: JSON Lines, checked the way OpenAI validates a batch.

A line that is not JSON, lacks ``custom_id``, repeats one, is not a POST to the
batch's endpoint, has no ``body``, or names another model than the lines before it,
fails the whole file (``InvalidFile``, whose errors become the batch's ``errors.data``).
A body that is not a valid chat-completions request only fails its own line: it is
answered as the synchronous endpoint would answer it (a 400).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.simulator import openai_wire
from orchestrator.simulator.batch_store import BatchLine
from orchestrator.simulator.wire import SimError

ENDPOINT = "/v1/chat/completions"


class InvalidFile(Exception):
    """The input file fails validation: the batch is created ``failed`` with these errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors


def _line_error(line: int, code: str, message: str, param: str | None = None) -> InvalidFile:
    return InvalidFile([{"code": code, "line": line, "message": message, "param": param}])


def _parse_line(number: int, raw: bytes, seen: set[str]) -> tuple[str, dict[str, Any]]:
    try:
        item = json.loads(raw)
    except ValueError:
        raise _line_error(number, "invalid_json_line", "This line is not valid JSON.") from None
    custom_id = item.get("custom_id") if isinstance(item, dict) else None
    if not isinstance(custom_id, str) or not custom_id:
        raise _line_error(number, "missing_required_parameter", "Missing custom_id.", "custom_id")
    if custom_id in seen:
        raise _line_error(number, "duplicate_custom_id", f"custom_id {custom_id!r} repeats.")
    if item.get("method") != "POST" or item.get("url") != ENDPOINT:
        message = f"Every line must be a POST to {ENDPOINT}, the batch's endpoint."
        raise _line_error(number, "invalid_url", message, "url")
    body = item.get("body")
    if not isinstance(body, dict):
        raise _line_error(number, "missing_required_parameter", "Missing body.", "body")
    seen.add(custom_id)
    return custom_id, body


def parse_lines(data: bytes) -> list[BatchLine]:
    """The input file's lines, parsed; raises ``InvalidFile``."""
    seen: set[str] = set()
    lines: list[BatchLine] = []
    model: str | None = None
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        custom_id, body = _parse_line(number, raw, seen)
        if model is not None and body.get("model") != model:
            message = f"Line {number} names model {body.get('model')!r}, not the batch's {model!r}."
            raise _line_error(number, "mismatched_model", message, "body.model")
        model = model or body.get("model")
        try:
            if body.get("stream"):
                raise SimError(400, "Streaming is not supported in a batch.", param="stream")
            lines.append(BatchLine(custom_id, openai_wire.parse(body)))
        except SimError as exc:
            lines.append(BatchLine(custom_id, None, error=exc))
    if not lines:
        raise _line_error(1, "empty_file", "The input file has no requests.")
    return lines
