"""Offline token estimates, good enough to fit context windows and to fake usage.

No tokenizer is loaded. English text and code average about four characters per
token across the common BPE vocabularies, but other scripts do not: a Chinese,
Japanese or Korean character is about one token, Cyrillic about two characters a
token, and Arabic, Greek, Indic or Thai letters close to one token each (measured
with OpenAI's cl100k_base; the counts are fixtures in
``tests/fixtures/tokens/cl100k_counts.json``). So the estimate counts each script
at its own rate, with ASCII text on a fast path. An image costs a fixed number of tokens
(OpenAI's figures: 85 for ``detail=low``, 765 for a 1024x1024 tile set at
``auto``/``high``). Estimates err slightly high, which is the safe side when
fitting a prompt into a context window.
"""

from __future__ import annotations

import re

from orchestrator.core.schemas import ImagePart, Message, TextPart, Tool

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765


# Characters of about one token each: CJK punctuation, kana, ideographs, full-width forms.
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")  # about 1.3 tokens
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")  # about two characters a token
_ASTRAL = re.compile(r"[\U00010000-\U0010ffff]")  # emoji and rare ideographs: about two tokens


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``, each script at its own rate; at least 1 for non-empty text.

    ASCII: 4 characters a token; Chinese and Japanese: 1 token a character; Hangul:
    1.3; Cyrillic: 2 characters a token; characters outside the Basic Multilingual
    Plane: 2 tokens; any other non-ASCII character (accented Latin, Greek, Arabic,
    Hebrew, Indic, Thai): 1.2 tokens.
    """
    if not text:
        return 0
    if text.isascii():
        return max(1, -(-len(text) // CHARS_PER_TOKEN))
    ascii_chars = len(text.encode("ascii", "ignore"))
    cjk = len(_CJK.findall(text))
    hangul = len(_HANGUL.findall(text))
    cyrillic = len(_CYRILLIC.findall(text))
    astral = len(_ASTRAL.findall(text))
    other = len(text) - ascii_chars - cjk - hangul - cyrillic - astral
    tokens = (
        ascii_chars / CHARS_PER_TOKEN + cjk + 1.3 * hangul + cyrillic / 2 + 2 * astral + 1.2 * other
    )
    return max(1, -int(-tokens // 1))


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
