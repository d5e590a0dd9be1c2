"""Prices x usage -> integer micro-USD.

Catalog prices are USD per million tokens, so one token costs exactly
``price`` micro-USD: the arithmetic is done in Decimal and rounded half-up
once per call, never in floats.

Prompt tokens are priced by where they came from: read from the provider's
prompt cache (``cached_input_usd_per_mtok``), written to it
(``cache_write_usd_per_mtok``, Anthropic's 1.25x), or neither (the input price).
Reasoning tokens are output tokens and are priced as such.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Usage

MICRO_PER_USD = 1_000_000


def cost_exact_micro_usd(deployment: Deployment, usage: Usage) -> Decimal:
    """The unrounded cost of one call, in micro-USD."""
    return (
        Decimal(usage.uncached_input_tokens) * deployment.input_usd_per_mtok
        + Decimal(usage.cached_input_tokens) * deployment.cached_input_price
        + Decimal(usage.cache_write_input_tokens) * deployment.cache_write_price
        + Decimal(usage.output_tokens) * deployment.output_usd_per_mtok
    )


def cost_micro_usd(deployment: Deployment, usage: Usage) -> int:
    """What one call with this usage costs on this deployment (rounded half-up)."""
    exact = cost_exact_micro_usd(deployment, usage)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_usd(micro_usd: int) -> str:
    """Human form for tables: ``$0.000123``."""
    return f"${Decimal(micro_usd) / MICRO_PER_USD:.6f}"
