"""Response-cache keys and modes, and Anthropic prompt caching against the simulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from orchestrator.cache.responses import (
    CachedAnswer,
    effective_mode,
    header_mode,
    request_digest,
    with_cache_header,
)
from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest, Usage
from orchestrator.costs.pricing import cost_micro_usd
from workers.providers.anthropic import AnthropicMessagesAdapter, build_body
from workers.providers.prompt_cache import MIN_PREFIX_TOKENS, mark_stable_prefix

QUESTION: list[dict[str, Any]] = [{"role": "user", "content": "What is 2+2?"}]
BASE: dict[str, Any] = {"messages": QUESTION, "temperature": 0}


def test_the_digest_ignores_bookkeeping_but_not_what_decides_the_answer() -> None:
    # Given one request
    digest = request_digest(JobRequest.model_validate(BASE))
    # Then ids, metadata, webhooks and the cache mode do not change its digest
    same = {**BASE, "custom_id": "x", "metadata": {"a": "b"}, "cache": "read"}
    assert request_digest(JobRequest.model_validate(same)) == digest
    # And a system prompt given as a field or as a message is the same request
    as_field = JobRequest.model_validate({**BASE, "system": "Be brief."})
    as_message = JobRequest.model_validate(
        {**BASE, "messages": [{"role": "system", "content": "Be brief."}, *QUESTION]}
    )
    assert request_digest(as_field) == request_digest(as_message)
    # But every parameter that changes the answer changes the digest
    for change in (
        {"temperature": 0.5},
        {"max_tokens": 7},
        {"tier": "code"},
        {"model": "m"},
        {"messages": [{"role": "user", "content": "What is 2+3?"}]},
    ):
        assert request_digest(JobRequest.model_validate({**BASE, **change})) != digest


def test_modes_follow_request_then_tenant_then_temperature() -> None:
    deterministic = JobRequest.model_validate(BASE)
    creative = JobRequest.model_validate({**BASE, "temperature": 0.7})
    unset = JobRequest.model_validate({"prompt": "hi"})
    # Only temperature 0 is cached by default
    assert effective_mode(deterministic) == "on"
    assert effective_mode(creative) == "off" and effective_mode(unset) == "off"
    # A tenant's default overrides that, the request's own mode overrides both
    assert effective_mode(deterministic, "off") == "off"
    assert effective_mode(creative, "on") == "on"
    assert effective_mode(creative.model_copy(update={"cache": "read"}), "off") == "read"
    # A session turn is never cached (its real prompt is the whole conversation)
    assert effective_mode(deterministic.model_copy(update={"session_id": "s1"})) == "off"


def test_cache_control_header_maps_to_modes() -> None:
    assert header_mode("no-cache") == "write"
    assert header_mode("no-store, max-age=0") == "off"
    assert header_mode(None) is None and header_mode("max-age=60") is None
    request = with_cache_header(JobRequest.model_validate(BASE), "No-Cache")
    assert request.cache == "write"


def test_an_invalid_mode_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="cache"):
        JobRequest.model_validate({**BASE, "cache": "sometimes"})


def test_a_cached_answer_bills_nothing() -> None:
    dep = Deployment(
        name="d",
        provider="p",
        model="m",
        base_url="http://x",
        tiers=("fast",),
        input_usd_per_mtok=Decimal(1),
        output_usd_per_mtok=Decimal(2),
        context_window=8192,
    )
    made = Completion(text="4", usage=Usage(input_tokens=10, output_tokens=1))
    entry = CachedAnswer.loads(CachedAnswer.of(made, tier="fast", deployment=dep).dumps())
    assert entry is not None and entry.deployment == "d" and entry.tier == "fast"
    again = entry.completion()
    assert again.text == "4" and cost_micro_usd(dep, again.usage) == 0


LONG = "The museum holds many paintings from many centuries and many places. " * 80


def anthropic(base_url: str) -> Deployment:
    return Deployment(
        name="a",
        provider="sim",
        api="anthropic",
        model="claude-cache-test",
        base_url=base_url,
        tiers=("fast",),
        input_usd_per_mtok=Decimal(3),
        output_usd_per_mtok=Decimal(15),
        cached_input_usd_per_mtok=Decimal("0.3"),
        cache_write_usd_per_mtok=Decimal("3.75"),
        context_window=200_000,
    )


def conversation() -> JobRequest:
    return JobRequest.model_validate(
        {
            "system": LONG,
            "messages": [
                {"role": "user", "content": "Tell me about the first room."},
                {"role": "assistant", "content": LONG},
                {"role": "user", "content": "And the second?"},
            ],
            "max_tokens": 64,
        }
    )


def test_long_stable_prefixes_get_cache_control() -> None:
    body = build_body(anthropic("http://x"), conversation())
    # The long system prompt and the conversation before the last turn are marked
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][-2]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["messages"][-1]["content"][-1]
    # A short prompt is left alone, and so is a body the client marked itself
    short = build_body(anthropic("http://x"), JobRequest(prompt="hi", system="Be brief."))
    assert short["system"] == "Be brief."
    marked = {
        "system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": LONG}]},
            {"role": "user", "content": [{"type": "text", "text": "x"}]},
        ],
    }
    assert "cache_control" not in mark_stable_prefix(marked)["messages"][0]["content"][0]
    assert MIN_PREFIX_TOKENS == 1024


def test_cached_prefix_is_read_back_and_priced_as_cached(simulator_url: str) -> None:
    # Given an Anthropic deployment on the simulator and a long conversation
    dep = anthropic(simulator_url)
    with httpx.Client(timeout=10) as client:
        adapter = AnthropicMessagesAdapter(client, None)
        # When it is sent twice
        first = adapter.complete(dep, conversation())
        second = adapter.complete(dep, conversation())
    # Then the first call wrote the prefix to the cache and the second read it
    assert first.usage.cache_write_input_tokens >= MIN_PREFIX_TOKENS
    assert second.usage.cached_input_tokens == first.usage.cache_write_input_tokens
    # And the read is priced at the cached price: the second call costs much less
    assert cost_micro_usd(dep, second.usage) < cost_micro_usd(dep, first.usage) / 3
