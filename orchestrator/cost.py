"""Prices x usage -> integer micro-USD.

Catalog prices are USD per million tokens, so one token costs exactly
``price`` micro-USD: the arithmetic is done in Decimal and rounded half-up
once per call, never in floats.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from orchestrator.catalog import Deployment
from orchestrator.schemas import Usage

MICRO_PER_USD = 1_000_000


def cost_micro_usd(deployment: Deployment, usage: Usage) -> int:
    """What one call with this usage costs on this deployment."""
    total = (
        Decimal(usage.input_tokens) * deployment.input_usd_per_mtok
        + Decimal(usage.output_tokens) * deployment.output_usd_per_mtok
    )
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_usd(micro_usd: int) -> str:
    """Human form for tables: ``$0.000123``."""
    return f"${Decimal(micro_usd) / MICRO_PER_USD:.6f}"
