"""Offline token estimates, good enough to fit context windows and to fake usage.

No tokenizer is loaded: English text averages about four characters per token
across the common BPE vocabularies, and an image costs a fixed number of tokens
(OpenAI's figures: 85 for ``detail=low``, 765 for a 1024x1024 tile set at
``auto``/``high``). Estimates err slightly high, which is the safe side when
fitting a prompt into a context window.
"""

from __future__ import annotations

from orchestrator.schemas import ImagePart, Message, TextPart, Tool

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``: ceil(chars / 4), and at least 1 for non-empty text."""
    if not text:
        return 0
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def image_tokens(detail: str | None) -> int:
    """Tokens one image costs at the given ``detail`` (``low``, ``high``, ``auto``)."""
    return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH


def estimate_message_tokens(message: Message) -> int:
    """Tokens for one message: text, images, tool calls and a fixed per-message overhead."""
    total = MESSAGE_OVERHEAD_TOKENS
    for call in message.tool_calls or ():
        total += estimate_tokens(call.function.name) + estimate_tokens(call.function.arguments)
    if message.content is None:
        return total
    if isinstance(message.content, str):
        return total + estimate_tokens(message.content)
    for part in message.content:
        if isinstance(part, TextPart):
            total += estimate_tokens(part.text)
        elif isinstance(part, ImagePart):
            total += image_tokens(part.image_url.detail)
    return total


def estimate_tools_tokens(tools: list[Tool] | None) -> int:
    """Tokens that tool definitions add to a prompt (their JSON, as the model sees it)."""
    if not tools:
        return 0
    return sum(estimate_tokens(t.function.model_dump_json(exclude_none=True)) for t in tools)


def estimate_request_tokens(messages: list[Message]) -> int:
    """Prompt tokens for a whole conversation, as a provider would bill them."""
    return sum(estimate_message_tokens(m) for m in messages)
