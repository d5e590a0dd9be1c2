"""What the simulator saw and served, in total and per model (``GET /_sim/stats``).

Benchmarks and chaos tests read these to check the cluster from the provider's
side: how many requests arrived and in what peak minute, how many were served,
how many 429s went out, and how many tokens passed. Provider batches are counted
apart (``batches``: per wire format and in total), since their lines are not requests.
"""

from __future__ import annotations

from typing import Any

from orchestrator.simulator.window import SlidingWindow


class Counts:
    """Counters for one model (or the total)."""

    __slots__ = (
        "errors",
        "input_tokens",
        "output_tokens",
        "rate_limited",
        "received",
        "received_window",
        "served",
        "served_window",
    )

    def __init__(self) -> None:
        self.received = 0
        self.served = 0
        self.rate_limited = 0
        self.errors: dict[str, int] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.received_window = SlidingWindow()
        self.served_window = SlidingWindow()

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "served": self.served,
            "rate_limited": self.rate_limited,
            "errors": dict(self.errors),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "max_received_per_60s": self.received_window.max_total,
            "max_served_per_60s": self.served_window.max_total,
        }


class BatchCounts:
    """Provider batches of one wire format (or all): batches by how they ended, lines by outcome."""

    KEYS = (
        "created",
        "completed",
        "failed",
        "expired",
        "cancelled",
        "lines_received",
        "lines_served",
        "lines_failed",
        "lines_expired",
        "lines_cancelled",
        "input_tokens",
        "output_tokens",
    )

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.KEYS, 0)

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] += amount

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


class Stats:
    """Counts in total and per model; every method updates both."""

    def __init__(self) -> None:
        self.total = Counts()
        self.models: dict[str, Counts] = {}
        self.batch_total = BatchCounts()
        self.batch_formats: dict[str, BatchCounts] = {}

    def batch(self, fmt: str, key: str, amount: int = 1) -> None:
        """Count ``amount`` under ``key`` (``BatchCounts.KEYS``) for format ``fmt`` and in total."""
        counts = self.batch_formats.get(fmt)
        if counts is None:
            counts = self.batch_formats[fmt] = BatchCounts()
        counts.add(key, amount)
        self.batch_total.add(key, amount)

    def _both(self, model: str) -> tuple[Counts, Counts]:
        counts = self.models.get(model)
        if counts is None:
            counts = self.models[model] = Counts()
        return self.total, counts

    def received(self, model: str, now_s: float) -> None:
        for counts in self._both(model):
            counts.received += 1
            counts.received_window.add(1, now_s)

    def served(self, model: str, input_tokens: int, output_tokens: int, now_s: float) -> None:
        for counts in self._both(model):
            counts.served += 1
            counts.served_window.add(1, now_s)
            counts.input_tokens += input_tokens
            counts.output_tokens += output_tokens

    def failed(self, model: str, kind: str, rate_limited: bool = False) -> None:
        """An error answer of ``kind`` (``429``, ``500``, ``timeout``, ``context_length``...)."""
        for counts in self._both(model):
            counts.errors[kind] = counts.errors.get(kind, 0) + 1
            if rate_limited:
                counts.rate_limited += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.as_dict(),
            "models": {name: c.as_dict() for name, c in sorted(self.models.items())},
            "batches": {
                "total": self.batch_total.as_dict(),
                "formats": {f: c.as_dict() for f, c in sorted(self.batch_formats.items())},
            },
        }
