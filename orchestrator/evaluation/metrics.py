"""Router metrics as RouteLLM defines them (arXiv 2406.18665), computed exactly.

Route the top-k prompts by score to the strong model and the rest to the weak
one; sweep k from 0 to n. Quality is the mean outcome of the models chosen.

    PGR(share)  = (quality(share) - weak) / (strong - weak)
    APGR        = area under PGR over the share of strong calls in [0, 1]
    CPT(x)      = the smallest share of strong calls whose PGR reaches x

Prompts with equal scores cannot be told apart by the router, so they are
treated as one block routed together; inside a block the curve is the straight
line a random order would give on average. A constant scorer thus gets the
random router's expected curve exactly (APGR 0.5), whatever the data's order.
Plain-Python sums: tens of thousands of prompts take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Curve:
    """Quality against the share of strong calls, at every block boundary."""

    shares: tuple[float, ...]
    qualities: tuple[float, ...]
    weak: float
    strong: float

    @property
    def gap(self) -> float:
        return self.strong - self.weak

    def pgr(self) -> tuple[float, ...]:
        gap = self.gap or 1.0
        return tuple((q - self.weak) / gap for q in self.qualities)

    def apgr(self) -> float | None:
        """Area under the PGR curve; None when both models score the same overall."""
        if self.gap == 0:
            return None
        pgr = self.pgr()
        area = 0.0
        for i in range(1, len(self.shares)):
            area += (self.shares[i] - self.shares[i - 1]) * (pgr[i] + pgr[i - 1]) / 2
        return area

    def cpt(self, target: float) -> float | None:
        """Smallest share of strong calls with PGR >= ``target`` (linear between points)."""
        if self.gap == 0:
            return None
        pgr = self.pgr()
        if pgr[0] >= target:
            return 0.0
        for i in range(1, len(pgr)):
            if pgr[i] >= target:
                rise = pgr[i] - pgr[i - 1]
                step = (target - pgr[i - 1]) / rise if rise else 1.0
                return self.shares[i - 1] + step * (self.shares[i] - self.shares[i - 1])
        return None

    def quality_at(self, share: float) -> float:
        """Quality with ``share`` of calls strong (linear between block boundaries)."""
        for i in range(1, len(self.shares)):
            if share <= self.shares[i]:
                x0, x1 = self.shares[i - 1], self.shares[i]
                t = (share - x0) / (x1 - x0) if x1 > x0 else 1.0
                return self.qualities[i - 1] + t * (self.qualities[i] - self.qualities[i - 1])
        return self.qualities[-1]


def curve(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> Curve:
    """The quality curve of routing by ``scores`` (higher goes strong first)."""
    n = len(scores)
    if n == 0 or not len(weak) == len(strong) == n:
        raise ValueError("scores, weak and strong must be equally long and not empty")
    order = sorted(range(n), key=lambda i: -scores[i])
    total = sum(weak)
    shares, qualities = [0.0], [total / n]
    i = 0
    while i < n:
        j = i
        block = scores[order[i]]
        while j < n and scores[order[j]] == block:
            total += strong[order[j]] - weak[order[j]]
            j += 1
        shares.append(j / n)
        qualities.append(total / n)
        i = j
    return Curve(tuple(shares), tuple(qualities), sum(weak) / n, sum(strong) / n)


def summary(found: Curve) -> dict[str, float | None]:
    """APGR, CPT(50%) and CPT(80%), rounded for printing."""

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {"apgr": r(found.apgr()), "cpt50": r(found.cpt(0.5)), "cpt80": r(found.cpt(0.8))}
