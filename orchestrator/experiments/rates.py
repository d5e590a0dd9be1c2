"""Statistics for rates (0/1 outcomes): one rate's interval, and two rates compared.

A success or fallback rate is a proportion, not a mean of normal values: Welch's
t on [1, 1] against [0, 0] reports p = 0, and a Student-t interval around [1, 1, 1]
is [1, 1]. The methods made for proportions:

    one rate            Wilson's score interval (never outside [0, 1], never empty)
    arm minus control   Newcombe's hybrid score interval (his method 10, built from
                        the two Wilson intervals)
    p-value             Fisher's exact test while any cell of the 2x2 table is
                        small (under ``EXACT_BELOW``), else the pooled two-proportion z-test

Pure functions over counts (``experiments.arm_stats`` turns them into the report's
figures); ``tests/unit/test_experiment_rates.py`` checks them
against scipy and statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
EXACT_BELOW = 50  # Fisher's exact test while a 2x2 cell is under this count


def counts(values: Sequence[float]) -> tuple[int, int]:
    """(successes, trials) of a sample of 0/1 outcomes."""
    return sum(1 for v in values if v), len(values)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for successes / n (n > 0)."""
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(control: tuple[int, int], arm: tuple[int, int]) -> tuple[float, float, float]:
    """rate(arm) - rate(control) with Newcombe's hybrid score 95% interval."""
    (x0, n0), (x1, n1) = control, arm
    p0, p1 = x0 / n0, x1 / n1
    (l0, u0), (l1, u1) = wilson(x0, n0), wilson(x1, n1)
    diff = p1 - p0
    low = diff - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return diff, low, high


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(control: tuple[int, int], arm: tuple[int, int]) -> float:
    """Two-sided Fisher exact p: tables as likely as or less likely than the one seen."""
    (x0, n0), (x1, n1) = control, arm
    hits = x0 + x1

    def log_p(k: int) -> float:  # k of the hits in the arm, the rest in control
        return _log_choose(n1, k) + _log_choose(n0, hits - k) - _log_choose(n0 + n1, hits)

    seen = log_p(x1)
    support = range(max(0, hits - n0), min(hits, n1) + 1)
    tolerance = 1e-7  # the relative tolerance scipy uses for "as likely"
    total = sum(math.exp(log_p(k)) for k in support if log_p(k) <= seen + tolerance)
    return min(1.0, total)


def z_test(control: tuple[int, int], arm: tuple[int, int]) -> float:
    """Two-sided p of the pooled two-proportion z-test."""
    (x0, n0), (x1, n1) = control, arm
    pooled = (x0 + x1) / (n0 + n1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    if se == 0.0:
        return 1.0
    z = (x1 / n1 - x0 / n0) / se
    return math.erfc(abs(z) / math.sqrt(2))


def compare_rates(
    control: tuple[int, int], arm: tuple[int, int]
) -> tuple[float, float, float, float]:
    """(diff, low, high, p) of rate(arm) - rate(control), both with trials."""
    diff, low, high = newcombe(control, arm)
    cells = (control[0], control[1] - control[0], arm[0], arm[1] - arm[0])
    small = min(cells) < EXACT_BELOW
    return diff, low, high, fisher_exact(control, arm) if small else z_test(control, arm)
