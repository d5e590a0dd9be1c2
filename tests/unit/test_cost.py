"""Cost per call from the built-in catalog's prices, checked against figures worked by hand.

Prices are USD per million tokens, so a token costs exactly ``price`` micro-USD.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Usage
from orchestrator.costs.pricing import cost_exact_micro_usd, cost_micro_usd


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Settings(simulator_url="http://sim:9/v1"))


def test_openai_cached_prompt_tokens_are_priced_as_cached(catalog: Catalog) -> None:
    # Given gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million
    mini = catalog.get("sim-gpt-4o-mini")
    # When 2,006 prompt tokens (1,920 of them from the cache) and 300 output tokens are used
    usage = Usage(input_tokens=2006, cached_input_tokens=1920, output_tokens=300)
    # Then 86 x 0.15 + 1,920 x 0.075 + 300 x 0.60 = 12.9 + 144 + 180 = 336.9 -> 337 micro-USD
    assert cost_exact_micro_usd(mini, usage) == Decimal("336.9")
    assert cost_micro_usd(mini, usage) == 337


def test_anthropic_cache_writes_and_reads_have_their_own_prices(catalog: Catalog) -> None:
    # Given claude-sonnet-4: $3 input, $3.75 cache write, $0.30 cache read, $15 output
    sonnet = catalog.get("sim-claude-sonnet-4")
    # When the first call writes 188,086 tokens to the cache (21 uncached, 393 out)
    first = Usage(input_tokens=188_107, cache_write_input_tokens=188_086, output_tokens=393)
    # Then 21 x 3 + 188,086 x 3.75 + 393 x 15 = 63 + 705,322.5 + 5,895 = 711,280.5 -> 711,281
    assert cost_micro_usd(sonnet, first) == 711_281
    # When the second call reads them back
    second = Usage(input_tokens=188_107, cached_input_tokens=188_086, output_tokens=393)
    # Then 63 + 188,086 x 0.30 + 5,895 = 63 + 56,425.8 + 5,895 = 62,383.8 -> 62,384
    assert cost_micro_usd(sonnet, second) == 62_384


def test_gemini_thinking_tokens_are_output_tokens(catalog: Catalog) -> None:
    # Given gemini-2.5-flash: $0.30 input, $0.075 cached input, $2.50 output
    flash = catalog.get("sim-gemini-2.5-flash")
    # When 10,000 prompt tokens (8,000 cached) and 1,146 output tokens (1,138 thinking)
    usage = Usage(
        input_tokens=10_000, cached_input_tokens=8_000, output_tokens=1_146, reasoning_tokens=1_138
    )
    # Then 2,000 x 0.30 + 8,000 x 0.075 + 1,146 x 2.50 = 600 + 600 + 2,865 = 4,065
    assert cost_micro_usd(flash, usage) == 4_065


def test_o3_reasoning_tokens_are_billed_once_as_output(catalog: Catalog) -> None:
    # Given o3: $2 input, $8 output; 75 prompt and 1,186 output tokens, 1,024 of them reasoning
    o3 = catalog.get("sim-o3")
    usage = Usage(input_tokens=75, output_tokens=1_186, reasoning_tokens=1_024)
    # Then 75 x 2 + 1,186 x 8 = 150 + 9,488 = 9,638 (reasoning is not added again)
    assert cost_micro_usd(o3, usage) == 9_638


def test_cached_price_defaults_to_the_input_price(catalog: Catalog) -> None:
    # Given codestral, whose catalog entry names no cached price ($0.30 input)
    codestral = catalog.get("sim-codestral")
    assert codestral.cached_input_usd_per_mtok is None
    # When half its 1,000 prompt tokens were cached; Then all are priced as input: 300
    usage = Usage(input_tokens=1_000, cached_input_tokens=500)
    assert cost_micro_usd(codestral, usage) == 300


def test_every_catalog_cached_price_is_at_most_its_input_price(catalog: Catalog) -> None:
    for dep in catalog.deployments:
        assert dep.cached_input_price <= dep.input_usd_per_mtok, dep.name
