"""Offline token estimates: text, messages and images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.schemas import ImagePart, ImageURL, Message, TextPart
from orchestrator.core.tokens import (
    IMAGE_TOKENS_HIGH,
    IMAGE_TOKENS_LOW,
    MESSAGE_OVERHEAD_TOKENS,
    estimate_request_tokens,
    estimate_tokens,
)


def test_text_is_about_four_characters_per_token() -> None:
    """Given texts of known length, the estimate is ceil(chars / 4)."""
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_empty_text_is_zero_and_any_text_is_at_least_one() -> None:
    """Given no text there are no tokens; given one character there is one."""
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1


def test_request_adds_a_per_message_overhead() -> None:
    """Given two text messages, the estimate is their tokens plus the overhead of each."""
    messages = [
        Message(role="system", content="x" * 40),
        Message(role="user", content="y" * 8),
    ]
    assert estimate_request_tokens(messages) == 10 + 2 + 2 * MESSAGE_OVERHEAD_TOKENS


def test_images_cost_a_fixed_amount_by_detail() -> None:
    """Given a message with text and two images, each image costs its detail's price."""
    message = Message(
        role="user",
        content=[
            TextPart(text="describe"),
            ImagePart(image_url=ImageURL(url="https://example.com/a.png", detail="low")),
            ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA")),
        ],
    )
    expected = MESSAGE_OVERHEAD_TOKENS + 2 + IMAGE_TOKENS_LOW + IMAGE_TOKENS_HIGH
    assert estimate_request_tokens([message]) == expected


def test_no_messages_is_zero() -> None:
    """Given an empty conversation, the estimate is zero."""
    assert estimate_request_tokens([]) == 0


FIXTURES = Path(__file__).parent.parent / "fixtures" / "tokens" / "cl100k_counts.json"


@pytest.mark.parametrize("name", sorted(json.loads(FIXTURES.read_text())["texts"]))
def test_estimates_hold_for_every_script_against_a_published_tokenizer(name: str) -> None:
    # Given a text and its token count under OpenAI's cl100k_base (recorded as a fixture)
    case = json.loads(FIXTURES.read_text())["texts"][name]
    # When we estimate it offline
    found = estimate_tokens(case["text"])
    # Then the estimate is within -20%/+50% of the real count (chars / 4 was -75% for CJK)
    assert 0.8 * case["tokens"] <= found <= 1.5 * case["tokens"], (name, found, case["tokens"])


def test_cjk_counts_about_one_token_a_character() -> None:
    assert estimate_tokens("你好世界" * 100) == 400
    assert estimate_tokens("x" * 400) == 100
