"""Rate limits shared by every worker process on every host: GCRA in one Lua script.

Each deployment has one Redis hash with a theoretical arrival time (TAT) for
requests and one for tokens. ``acquire`` runs atomically in Redis, on Redis's
clock: the next call may start at ``max(request TAT, token TAT)``; if that is
within ``horizon`` the slot is reserved (both TATs move on by one request and
by the call's tokens) and the caller is told how long to wait. Calls are thus
spaced evenly (no burst at the top of a minute), and every call that is sent,
retries included, is counted. Tokens are reserved as estimated input plus
``max_tokens`` and settled with the real usage afterwards.

The pace is ``limit x (1 - headroom) x scale``. ``scale`` is the shared
response to the provider: each 429 multiplies it by 0.9 and each success adds
0.01 back (up to 1), so a provider that throttles harder than its published
limits slows every worker down at once, while an occasional 429 does little.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from orchestrator.catalog import Deployment
from orchestrator.schemas import Completion
from workers.guards.base import Call, Guard, RateLimitWait
from workers.providers.errors import ProviderError, RateLimited

log = logging.getLogger(__name__)

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon, reserved, tolerance = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if reserved > 0 and now <= reserved + tolerance then
  return {1, tostring(math.max(0, reserved - now)), tostring(reserved)}
end
local h = redis.call('HMGET', KEYS[1], 'rtat', 'ttat', 'scale')
local factor = (tonumber(h[3]) or 1) * (1 - tonumber(ARGV[7]))
local rtat = math.max(tonumber(h[1]) or now, now)
local ttat = math.max(tonumber(h[2]) or now, now)
local start = now
if rpm > 0 then start = math.max(start, rtat) end
if tpm > 0 then start = math.max(start, ttat) end
if start - now > horizon then
  return {0, tostring(start - now), tostring(start)}
end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'rtat', tostring(start + 60000 / (rpm * factor)))
end
if tpm > 0 then
  local tinc = 60000 * tokens / (tpm * factor)
  redis.call('HSET', KEYS[1], 'ttat', tostring(math.max(ttat, start) + tinc))
end
redis.call('PEXPIRE', KEYS[1], 600000)
return {1, tostring(start - now), tostring(start)}
"""

SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tpm, delta, outcome = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local h = redis.call('HMGET', KEYS[1], 'ttat', 'scale')
local scale = tonumber(h[2]) or 1
if tpm > 0 and delta ~= 0 and h[1] then
  local inc = 60000 * delta / (tpm * scale * (1 - tonumber(ARGV[4])))
  redis.call('HSET', KEYS[1], 'ttat', tostring(math.max(tonumber(h[1]) + inc, now)))
end
if outcome == 'ok' and scale < 1 then
  redis.call('HSET', KEYS[1], 'scale', tostring(math.min(1, scale + 0.01)))
elseif outcome == 'throttled' then
  redis.call('HSET', KEYS[1], 'scale', tostring(math.max(0.05, scale * 0.9)))
end
redis.call('PEXPIRE', KEYS[1], 600000)
return 1
"""

Outcome = Literal["ok", "failed", "throttled"]


@dataclass(frozen=True)
class Permit:
    """The limiter's answer: a slot reserved ``delay_s`` from now, or none within reach."""

    granted: bool
    delay_s: float
    at_ms: float


class RateLimiter:
    """Per-deployment RPM and TPM limits kept in Redis, shared by every process."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "",
        headroom: float = 0.03,
        tolerance_s: float = 1.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.headroom = headroom
        self.tolerance_ms = tolerance_s * 1000
        self._acquire = client.register_script(ACQUIRE)
        self._settle = client.register_script(SETTLE)

    def key(self, deployment: Deployment) -> str:
        return f"{self.prefix}switchyard:ratelimit:{deployment.name}"

    def acquire(
        self,
        deployment: Deployment,
        tokens: int,
        *,
        horizon_s: float,
        reserved_at_ms: float | None = None,
    ) -> Permit:
        """Reserve the next slot for one call of ``tokens`` if it is within ``horizon_s``.

        A slot reserved earlier (``reserved_at_ms``) is honoured if it has not passed
        by more than the tolerance; otherwise a new one is looked for.
        """
        limits = deployment.rate_limits
        args: list[Any] = [
            limits.rpm or 0,
            limits.tpm or 0,
            tokens,
            horizon_s * 1000,
            reserved_at_ms or 0,
            self.tolerance_ms,
            self.headroom,
        ]
        granted, delay_ms, at_ms = self._acquire(keys=[self.key(deployment)], args=args)
        return Permit(bool(granted), float(delay_ms) / 1000, float(at_ms))

    def settle(self, deployment: Deployment, *, reserved: int, used: int, outcome: Outcome) -> None:
        """Give back (or charge) the difference between reserved and used tokens; adapt pace."""
        args = [deployment.rate_limits.tpm or 0, used - reserved, outcome, self.headroom]
        self._settle(keys=[self.key(deployment)], args=args)


def limited(deployment: Deployment) -> bool:
    return bool(deployment.rate_limits.rpm or deployment.rate_limits.tpm)


@dataclass
class RateLimitGuard(Guard):
    """Waits for a shared slot before each call; a long wait hands the job back instead."""

    limiter: RateLimiter
    inline_s: float = 1.0
    horizon_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def before_call(self, call: Call) -> None:
        dep = call.deployment
        if not limited(dep):
            return
        slot = (
            call.progress.slot if (call.progress.slot or {}).get("deployment") == dep.name else None
        )
        tokens = int(slot["tokens"]) if slot else call.input_tokens + call.request.max_tokens
        try:
            permit = self.limiter.acquire(
                dep,
                tokens,
                horizon_s=self.horizon_s,
                reserved_at_ms=float(slot["at_ms"]) if slot else None,
            )
        except redis.RedisError as exc:
            reason = f"rate-limit state unreachable: {exc}"
            raise RateLimitWait(1 + self.rng.random(), reason) from exc
        call.progress.slot = None
        if not permit.granted:
            call.progress.waits += 1
            back_in = max(1.0, permit.delay_s - self.horizon_s / 2) * (
                0.8 + 0.4 * self.rng.random()
            )
            raise RateLimitWait(
                back_in, f"{dep.name}: no rate-limit slot for {permit.delay_s:.1f}s"
            )
        if permit.delay_s > self.inline_s:
            call.progress.slot = {"deployment": dep.name, "at_ms": permit.at_ms, "tokens": tokens}
            call.progress.waits += 1
            delay = permit.delay_s - self.inline_s / 2
            raise RateLimitWait(delay, f"{dep.name}: rate-limit slot reserved in {delay:.1f}s")
        self.sleep(permit.delay_s)
        call.reserved_tokens = tokens

    def after_success(self, call: Call, completion: Completion) -> None:
        used = completion.usage.input_tokens + completion.usage.output_tokens
        self._settle(call, used, "ok")

    def after_failure(self, call: Call, error: ProviderError) -> None:
        self._settle(
            call, call.input_tokens, "throttled" if isinstance(error, RateLimited) else "failed"
        )

    def _settle(self, call: Call, used: int, outcome: Outcome) -> None:
        if not call.reserved_tokens:
            return
        try:
            self.limiter.settle(
                call.deployment, reserved=call.reserved_tokens, used=used, outcome=outcome
            )
        except redis.RedisError as exc:
            log.warning("rate-limit settle for %s failed: %s", call.name, exc)
