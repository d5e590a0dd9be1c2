"""Tiers of work and the Celery queue each one runs on."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """A class of work with its own queue, workers and deployments."""

    FAST = "fast"
    REASONING = "reasoning"
    VISION = "vision"
    CODE = "code"

    @property
    def queue(self) -> str:
        return self.value


ALL_TIERS: tuple[Tier, ...] = tuple(Tier)
