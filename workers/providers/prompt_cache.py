"""Anthropic prompt caching: mark long stable prefixes with ``cache_control``.

Anthropic caches a prompt only up to blocks marked ``cache_control`` (OpenAI
and Gemini cache long prefixes on their own). For a body whose client set no
mark itself, ``mark_stable_prefix`` sets up to two:

- the end of the system prompt, if it alone is at least MIN_PREFIX_TOKENS long
  (stable for every turn of a conversation and across requests);
- the end of the second-to-last message, if everything before the last message
  is at least MIN_PREFIX_TOKENS long (the conversation so far: the next turn of
  a session, or a retry, sends the same prefix again).

Cached reads are then reported as ``cache_read_input_tokens`` and priced at the
deployment's ``cached_input_usd_per_mtok`` (writes at ``cache_write_usd_per_mtok``),
by ``orchestrator.costs.pricing``.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.core.tokens import IMAGE_TOKENS_HIGH, MESSAGE_OVERHEAD_TOKENS, estimate_tokens

MIN_PREFIX_TOKENS = 1024
EPHEMERAL = {"type": "ephemeral"}


def _block_tokens(block: Any) -> int:
    if not isinstance(block, dict):
        return estimate_tokens(str(block))
    if block.get("type") == "text":
        return estimate_tokens(str(block.get("text", "")))
    if block.get("type") == "image":
        return IMAGE_TOKENS_HIGH
    return estimate_tokens(json.dumps(block, separators=(",", ":")))


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    return sum(_block_tokens(b) for b in content or ())


def _marked(body: dict[str, Any]) -> bool:
    blocks: list[Any] = list(body.get("tools") or ())
    system = body.get("system")
    if isinstance(system, list):
        blocks += system
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            blocks += content
    return any(isinstance(b, dict) and "cache_control" in b for b in blocks)


def _mark_last(content: Any) -> list[dict[str, Any]]:
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks[-1] = {**blocks[-1], "cache_control": dict(EPHEMERAL)}
    return blocks


def mark_stable_prefix(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``cache_control`` on its long stable prefixes (see the module docstring)."""
    if _marked(body):
        return body  # the client placed its own breakpoints
    tools = sum(estimate_tokens(json.dumps(t)) for t in body.get("tools") or ())
    system = body.get("system")
    system_tokens = _content_tokens(system) if system else 0
    if system and tools + system_tokens >= MIN_PREFIX_TOKENS:
        body["system"] = _mark_last(system)
    messages = body.get("messages") or []
    if len(messages) < 2:
        return body
    earlier = messages[:-1]
    prefix = tools + system_tokens
    prefix += sum(MESSAGE_OVERHEAD_TOKENS + _content_tokens(m.get("content")) for m in earlier)
    if prefix >= MIN_PREFIX_TOKENS and earlier[-1].get("content"):
        earlier[-1]["content"] = _mark_last(earlier[-1]["content"])
    return body
