"""Retries: exponential backoff with jitter, the provider's Retry-After, tries per deployment.

A retryable error (429, 5xx, timeout, broken connection) is tried again on the
same deployment after a backoff, up to ``max_tries`` calls; then the plan's next
deployment gets the job. A final error (bad request, authentication, quota) ends
the job at once with the provider's message. How long to wait is the larger of
the jittered backoff and what the provider asked for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from workers.guards.base import Call, FailJob, Guard, RetryAfter, SkipDeployment
from workers.providers.errors import ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """How many calls per deployment, and how long between them."""

    max_tries: int = 3
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay_s(self, tries: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds before call number ``tries + 1``: equal-jitter backoff, or Retry-After."""
        backoff = min(self.cap_s, self.base_s * 2.0 ** max(0, tries - 1))
        delay = backoff / 2 + rng.random() * backoff / 2
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, retry_after_s * (1 + 0.1 * rng.random()))
        return delay


@dataclass
class RetryGuard(Guard):
    """Turns a failed call into a retry, a fallback or the end of the job."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)

    def before_call(self, call: Call) -> None:
        tries = call.progress.tries.get(call.name, 0)
        if tries >= self.policy.max_tries:
            raise SkipDeployment(f"{call.name}: {tries} calls failed")

    def after_failure(self, call: Call, error: ProviderError) -> None:
        if not error.retryable:
            raise FailJob(str(error))
        tries = call.progress.tries.get(call.name, 0)
        if tries >= self.policy.max_tries:
            raise SkipDeployment(f"{call.name}: {tries} calls failed, last: {error}")
        raise RetryAfter(self.policy.delay_s(tries, error.retry_after_s, self.rng), str(error))
