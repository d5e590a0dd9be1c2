"""Guards: the cross-cutting rules around every provider call, as small hook objects.

A guard sees each planned call before it is made and each outcome after it
(dramatiq's middleware, applied to one call instead of one message). It decides
by raising one of the signals below; the attempt loop in ``workers.execute``
only knows these signals, never the guards' reasons:

    GuardSignal                        a guard's decision about one planned call
    ├── SkipDeployment(reason, retry_in_s)   do not call this deployment now; try the
    │                                        plan's next one (breaker open, window
    │                                        too small, tries used up)
    ├── RetryAfter(delay_s, reason)          call this deployment again in delay_s
    │   └── RateLimitWait                    no rate-limit slot within reach: give the
    │                                        worker slot back and come back later
    └── FailJob(reason)                      stop now: the job fails with this error

Guards, in the order the loop runs them (``default_guards``; ``workers.runtime`` puts the
session and response-cache guards, then ``BudgetGuard`` (``workers.guards.budget``: no
call starts unless its worst case is held for its job), before them):

    ContextWindowGuard   a context-length error moves to a deployment with a larger window
    RetryGuard           backoff with jitter, Retry-After honoured, tries per deployment
    CircuitBreakerGuard  per-deployment breaker shared in Redis (closed/open/half-open)
    RateLimitGuard       per-deployment RPM + TPM limits shared in Redis (GCRA in Lua)
    LiveStatsGuard       latency, output length and errors per deployment, for routing
"""

from __future__ import annotations

import redis

from orchestrator.core.config import Settings
from orchestrator.routing.live_stats import LiveStats
from workers.guards.base import (
    Answered,
    Call,
    FailJob,
    Guard,
    GuardSignal,
    Progress,
    RateLimitWait,
    RetryAfter,
    SkipDeployment,
)
from workers.guards.breaker import BreakerPolicy, CircuitBreaker, CircuitBreakerGuard
from workers.guards.context import ContextWindowGuard
from workers.guards.livestats import LiveStatsGuard
from workers.guards.ratelimit import Permit, RateLimiter, RateLimitGuard
from workers.guards.retry import RetryGuard, RetryPolicy


def local_guards(settings: Settings) -> list[Guard]:
    """The guards that need no shared state: context windows and retries."""
    return [
        ContextWindowGuard(),
        RetryGuard(RetryPolicy(max_tries=settings.max_tries_per_deployment)),
    ]


def default_guards(settings: Settings, client: redis.Redis) -> list[Guard]:
    """The guards every worker runs, in order, sharing state through ``client``."""
    prefix = settings.redis_key_prefix
    breaker = CircuitBreaker(
        client, prefix=prefix, policy=BreakerPolicy(open_s=settings.breaker_open_s)
    )
    limiter = RateLimiter(client, prefix=prefix, headroom=settings.ratelimit_headroom)
    return [
        *local_guards(settings),
        CircuitBreakerGuard(breaker),
        RateLimitGuard(limiter, horizon_s=settings.ratelimit_horizon_s),
        LiveStatsGuard(LiveStats(client, prefix=prefix)),  # last: it times the call itself
    ]


__all__ = [
    "Answered",
    "BreakerPolicy",
    "Call",
    "CircuitBreaker",
    "CircuitBreakerGuard",
    "ContextWindowGuard",
    "FailJob",
    "Guard",
    "GuardSignal",
    "LiveStatsGuard",
    "Permit",
    "Progress",
    "RateLimitGuard",
    "RateLimitWait",
    "RateLimiter",
    "RetryAfter",
    "RetryGuard",
    "RetryPolicy",
    "SkipDeployment",
    "default_guards",
    "local_guards",
]
