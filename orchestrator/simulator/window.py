"""A count over the last 60 seconds, in one-second buckets: O(1) per update.

The simulator's rate limits and its per-minute statistics both need "how many
in the sliding minute"; keeping every timestamp would make each request cost
O(requests per minute). Buckets trade one second of resolution for constant
work: ``add`` advances the ring (clearing buckets that fell out of the window)
and keeps a running total.
"""

from __future__ import annotations

WINDOW_S = 60


class SlidingWindow:
    """Events (or tokens) in the last ``WINDOW_S`` seconds, plus the highest total seen."""

    __slots__ = ("_buckets", "_head", "max_total", "total")

    def __init__(self) -> None:
        self._buckets = [0] * WINDOW_S
        self._head = 0  # the whole second of the newest bucket
        self.total = 0
        self.max_total = 0

    def advance(self, now_s: float) -> None:
        """Drop buckets older than the window ending at ``now_s``."""
        second = int(now_s)
        gap = second - self._head
        if gap <= 0:
            return
        if gap >= WINDOW_S:
            self._buckets = [0] * WINDOW_S
            self.total = 0
        else:
            for s in range(self._head + 1, second + 1):
                index = s % WINDOW_S
                self.total -= self._buckets[index]
                self._buckets[index] = 0
        self._head = second

    def add(self, amount: int, now_s: float) -> None:
        self.advance(now_s)
        self._buckets[self._head % WINDOW_S] += amount
        self.total += amount
        if self.total > self.max_total:
            self.max_total = self.total

    def current(self, now_s: float) -> int:
        self.advance(now_s)
        return self.total

    def seconds_until_below(self, limit: int, now_s: float) -> float:
        """Seconds until the total drops below ``limit`` as old buckets expire."""
        self.advance(now_s)
        excess = self.total - limit
        if excess < 0:
            return 0.0
        for age in range(WINDOW_S - 1, -1, -1):  # oldest bucket first
            second = self._head - age
            excess -= self._buckets[second % WINDOW_S]
            if excess < 0:
                return max(0.0, second + WINDOW_S - now_s)
        return float(WINDOW_S)
