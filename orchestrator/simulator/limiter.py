"""RPM and TPM limits per API key and model, as a provider enforces them.

Each (key, model) pair has two sliding 60-second windows: requests and tokens
(prompt + answer tokens of admitted requests). A request that would go over
either limit is refused with the wait until enough of the window expires; an
admitted one is counted at once. ``Quota`` carries what the providers report in
their rate-limit headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.simulator.config import Profile
from orchestrator.simulator.window import SlidingWindow


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit's state after a decision: its size, what is left and when it resets."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer: admitted or not, the wait, and each limit's state."""

    admitted: bool
    retry_after_s: float = 0.0
    requests: Quota | None = None
    tokens: Quota | None = None
    exceeded: str = ""  # "requests" or "tokens" when refused


def _quota(window: SlidingWindow, limit: int, now_s: float) -> Quota:
    """The limit's state; ``reset_s`` is when it is whole again (the window empties)."""
    remaining = max(0, limit - window.total)
    return Quota(limit, remaining, window.seconds_until_below(1, now_s))


class RateLimiter:
    """Sliding-window RPM/TPM per (API key, model); O(1) per admitted request."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[SlidingWindow, SlidingWindow]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def _pair(self, key: str, model: str) -> tuple[SlidingWindow, SlidingWindow]:
        pair = self._windows.get((key, model))
        if pair is None:
            pair = self._windows[(key, model)] = (SlidingWindow(), SlidingWindow())
        return pair

    def admit(self, key: str, model: str, tokens: int, profile: Profile, now_s: float) -> Decision:
        """Count the request if both limits allow it; otherwise say how long to wait."""
        rpm, tpm = profile.rpm_limit, profile.tpm_limit
        if rpm is None and tpm is None:
            return Decision(admitted=True)
        requests, used = self._pair(key, model)
        requests.advance(now_s)
        used.advance(now_s)
        if rpm is not None and requests.total + 1 > rpm:
            wait = requests.seconds_until_below(rpm, now_s)
            return self._refused("requests", wait, requests, used, profile, now_s)
        if tpm is not None and used.total + tokens > tpm:
            wait = used.seconds_until_below(max(0, tpm - tokens) + 1, now_s)
            return self._refused("tokens", wait, requests, used, profile, now_s)
        requests.add(1, now_s)
        used.add(tokens, now_s)
        return Decision(
            admitted=True,
            requests=_quota(requests, rpm, now_s) if rpm else None,
            tokens=_quota(used, tpm, now_s) if tpm else None,
        )

    @staticmethod
    def _refused(
        exceeded: str,
        wait_s: float,
        requests: SlidingWindow,
        used: SlidingWindow,
        profile: Profile,
        now_s: float,
    ) -> Decision:
        rpm, tpm = profile.rpm_limit, profile.tpm_limit
        return Decision(
            admitted=False,
            retry_after_s=max(wait_s, 0.001),
            requests=_quota(requests, rpm, now_s) if rpm else None,
            tokens=_quota(used, tpm, now_s) if tpm else None,
            exceeded=exceeded,
        )
