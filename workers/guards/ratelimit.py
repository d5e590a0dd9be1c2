"""Rate limits shared by every worker process on every host: GCRA in one Lua script.

Each deployment has one Redis hash with a theoretical arrival time (TAT) for
requests and one for tokens. ``acquire`` runs atomically in Redis, on Redis's
clock: the next call may start at ``max(request TAT, token TAT)``; if that is
within ``horizon`` (the few seconds a worker thread may sleep) the slot is
reserved (both TATs move on by one request and by the call's tokens) and the
caller is told how long to wait. Calls are thus spaced evenly (no burst at the
top of a minute), and every call that is sent, retries included, is counted.
Tokens are reserved as estimated input plus ``max_tokens`` and settled with the
real usage afterwards.

A slot further away than ``horizon`` is never reserved: only a caller that is
about to use its slot holds one, so no slot is lost to a job that comes back late.
Instead the caller is given a place in a waiting line (a third TAT, ``wtat``,
that moves on by one call per place given and reserves nothing) and comes back
shortly before it. A returning job presents its place: it keeps it (it is not
put at the end again), and it may take a slot once its place is within
``horizon``; a job without a place takes a free slot only when nobody is waiting
in line before it. Jobs in line come back at the pace of the limit, a little
early, so the few seconds of slots ahead are always held by sleeping threads
and one that comes back late only lets the next one go first. A slot due within
``eager`` that nobody has taken (whoever was in line for it is late) goes to any
caller, so it is not wasted either.

The pace is ``limit x (1 - headroom) x scale``. ``scale`` is the shared
response to the provider: each 429 multiplies it by 0.9 and each success adds
0.01 back (up to 1), so a provider that throttles harder than its published
limits slows every worker down at once, while an occasional 429 does little.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion
from workers.guards.base import Call, Guard, RateLimitWait
from workers.providers.errors import ProviderError, RateLimited

log = logging.getLogger(__name__)

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon, place, eager = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'rtat', 'ttat', 'scale', 'epoch', 'wtat')
local epoch = h[4]
if not epoch then
  epoch = ARGV[8]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
if epoch ~= ARGV[9] then place = 0 end
local factor = (tonumber(h[3]) or 1) * (1 - tonumber(ARGV[7]))
local rtat = math.max(tonumber(h[1]) or now, now)
local ttat = math.max(tonumber(h[2]) or now, now)
local start = now
if rpm > 0 then start = math.max(start, rtat) end
if tpm > 0 then start = math.max(start, ttat) end
local inc = 0
if rpm > 0 then inc = 60000 / (rpm * factor) end
if tpm > 0 then inc = math.max(inc, 60000 * tokens / (tpm * factor)) end
local newcomer = place <= 0
if newcomer then place = math.max(tonumber(h[5]) or now, start) end
local due = place - now <= horizon
if start - now <= horizon and (due or start - now <= eager) then
  if rpm > 0 then
    redis.call('HSET', KEYS[1], 'rtat', tostring(start + 60000 / (rpm * factor)))
  end
  if tpm > 0 then
    local tinc = 60000 * tokens / (tpm * factor)
    redis.call('HSET', KEYS[1], 'ttat', tostring(math.max(ttat, start) + tinc))
  end
  if newcomer and due then redis.call('HSET', KEYS[1], 'wtat', tostring(place + inc)) end
  redis.call('PEXPIRE', KEYS[1], 600000)
  return {1, tostring(start - now), tostring(start), epoch}
end
if newcomer then
  redis.call('HSET', KEYS[1], 'wtat', tostring(place + inc))
  redis.call('PEXPIRE', KEYS[1], 600000)
end
place = math.max(place, start)
return {0, tostring(place - now), tostring(place), epoch}
"""

SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tpm, delta, outcome = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local h = redis.call('HMGET', KEYS[1], 'ttat', 'scale', 'wtat')
local scale = tonumber(h[2]) or 1
if tpm > 0 and delta ~= 0 and h[1] then
  local inc = 60000 * delta / (tpm * scale * (1 - tonumber(ARGV[4])))
  redis.call('HSET', KEYS[1], 'ttat', tostring(math.max(tonumber(h[1]) + inc, now)))
  if h[3] then
    redis.call('HSET', KEYS[1], 'wtat', tostring(math.max(tonumber(h[3]) + inc, now)))
  end
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
    """The limiter's answer: a slot reserved ``delay_s`` from now, or a place in line.

    Not granted, ``at_ms`` is the caller's place in the waiting line (Redis time, ms)
    and ``delay_s`` how far away it is; nothing is reserved for it.
    """

    granted: bool
    delay_s: float
    at_ms: float
    epoch: str = ""


class RateLimiter:
    """Per-deployment RPM and TPM limits kept in Redis, shared by every process."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "",
        headroom: float = 0.03,
        eager_s: float = 0.5,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.headroom = headroom
        self.eager_ms = eager_s * 1000
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
        place_ms: float | None = None,
        place_epoch: str = "",
    ) -> Permit:
        """Reserve a slot for a call of ``tokens`` if the caller may have it within ``horizon_s``.

        A caller may when its place in line (``place_ms``, given by an earlier call in
        ``place_epoch``) is within ``horizon_s``, or when the next slot is within
        ``eager_s`` (whoever is in line before it has not come back for it). A caller
        without a place is given the next one (after everyone already in line); if it
        is within ``horizon_s`` the slot is reserved at once. A place from a Redis that
        has since lost the limiter's state (a new epoch) counts for nothing.
        Otherwise nothing is reserved and the permit says where the caller's place is.
        """
        limits = deployment.rate_limits
        args: list[Any] = [
            limits.rpm or 0,
            limits.tpm or 0,
            tokens,
            horizon_s * 1000,
            place_ms or 0,
            self.eager_ms,
            self.headroom,
            secrets.token_hex(8),
            place_epoch,
        ]
        granted, delay_ms, at_ms, epoch = self._acquire(keys=[self.key(deployment)], args=args)
        return Permit(bool(granted), float(delay_ms) / 1000, float(at_ms), _text(epoch))

    def settle(self, deployment: Deployment, *, reserved: int, used: int, outcome: Outcome) -> None:
        """Give back (or charge) the difference between reserved and used tokens; adapt pace."""
        args = [deployment.rate_limits.tpm or 0, used - reserved, outcome, self.headroom]
        self._settle(keys=[self.key(deployment)], args=args)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def limited(deployment: Deployment) -> bool:
    return bool(deployment.rate_limits.rpm or deployment.rate_limits.tpm)


@dataclass
class RateLimitGuard(Guard):
    """Waits for a shared slot before each call; a job not yet due is handed back.

    A slot is only ever reserved for a call that will be sent within ``inline_s``:
    the worker thread sleeps until then. A job whose turn is further away is handed
    back without reserving anything, keeping its place in line (in ``jobs.progress``),
    to come back ``lead_s`` before it (at most ``horizon_s`` later, when it asks
    again); a job that comes back late has lost nothing and wasted no slot.
    """

    limiter: RateLimiter
    inline_s: float = 2.5
    lead_s: float = 2.0
    horizon_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def before_call(self, call: Call) -> None:
        if not limited(call.deployment):
            return
        tokens = call.input_tokens + call.request.max_tokens
        permit = self._permit(call, tokens)
        if permit.granted:
            self.sleep(permit.delay_s)
            call.reserved_tokens = tokens
            return
        call.progress.waits += 1
        call.progress.slot = {
            "deployment": call.name,
            "place_ms": permit.at_ms,
            "epoch": permit.epoch,
        }
        delay = min(permit.delay_s - self.lead_s, self.horizon_s)
        reason = f"{call.name}: rate-limit turn in {permit.delay_s:.1f}s"
        raise RateLimitWait(delay, reason)

    def _permit(self, call: Call, tokens: int) -> Permit:
        """Ask for a slot, presenting the place in line an earlier delivery was given."""
        place = call.progress.slot
        if place is not None and (place.get("deployment") != call.name or "place_ms" not in place):
            place = None  # another deployment's, or a booking of an older version: void
        try:
            permit = self.limiter.acquire(
                call.deployment,
                tokens,
                horizon_s=self.inline_s,
                place_ms=float(place["place_ms"]) if place else None,
                place_epoch=str(place.get("epoch", "")) if place else "",
            )
        except redis.RedisError as exc:
            reason = f"rate-limit state unreachable: {exc}"
            raise RateLimitWait(1 + self.rng.random(), reason) from exc
        call.progress.slot = None
        return permit

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
