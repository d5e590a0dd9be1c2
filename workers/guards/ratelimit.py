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
import secrets
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
local h = redis.call('HMGET', KEYS[1], 'rtat', 'ttat', 'scale', 'epoch')
local epoch = h[4]
if reserved > 0 and epoch == ARGV[9] and now <= reserved + tolerance then
  return {1, tostring(math.max(0, reserved - now)), tostring(reserved), epoch}
end
if not epoch then
  epoch = ARGV[8]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local factor = (tonumber(h[3]) or 1) * (1 - tonumber(ARGV[7]))
local rtat = math.max(tonumber(h[1]) or now, now)
local ttat = math.max(tonumber(h[2]) or now, now)
local start = now
if rpm > 0 then start = math.max(start, rtat) end
if tpm > 0 then start = math.max(start, ttat) end
if start - now > horizon then
  return {0, tostring(start - now), tostring(start), epoch}
end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'rtat', tostring(start + 60000 / (rpm * factor)))
end
if tpm > 0 then
  local tinc = 60000 * tokens / (tpm * factor)
  redis.call('HSET', KEYS[1], 'ttat', tostring(math.max(ttat, start) + tinc))
end
redis.call('PEXPIRE', KEYS[1], 600000)
return {1, tostring(start - now), tostring(start), epoch}
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
    epoch: str = ""


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
        reserved_epoch: str = "",
    ) -> Permit:
        """Reserve the next slot for one call of ``tokens`` if it is within ``horizon_s``.

        A slot reserved earlier (``reserved_at_ms`` in ``reserved_epoch``) is honoured
        if it has not passed by more than the tolerance and the state that booked it
        still exists (a Redis that restarted empty has a new epoch and no bookings);
        otherwise a new slot is looked for.
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
            secrets.token_hex(8),
            reserved_epoch,
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
    """Waits for a shared slot before each call; a long wait hands the job back instead.

    A wait up to ``inline_s`` is slept in the worker thread. A longer one books the
    slot and hands the job back to return ``lead_s`` before it, so a worker that is
    slow to pick the job up again (busy threads, a loaded host) still makes its slot;
    a job back more than the limiter's tolerance after its slot books a new one.
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
        permit, tokens = self._permit(call)
        if not permit.granted:
            call.progress.waits += 1
            back_in = max(1.0, permit.delay_s - self.horizon_s / 2)
            reason = f"{call.name}: no rate-limit slot for {permit.delay_s:.1f}s"
            raise RateLimitWait(back_in * (0.8 + 0.4 * self.rng.random()), reason)
        if permit.delay_s > self.inline_s:
            call.progress.waits += 1
            call.progress.slot = {
                "deployment": call.name,
                "at_ms": permit.at_ms,
                "epoch": permit.epoch,
                "tokens": tokens,
            }
            delay = permit.delay_s - self.lead_s
            raise RateLimitWait(delay, f"{call.name}: rate-limit slot booked in {delay:.1f}s")
        self.sleep(permit.delay_s)
        call.reserved_tokens = tokens

    def _permit(self, call: Call) -> tuple[Permit, int]:
        """Ask for a slot, presenting the one an earlier delivery booked, if any."""
        slot = call.progress.slot
        if slot is not None and slot.get("deployment") != call.name:
            slot = None
        tokens = int(slot["tokens"]) if slot else call.input_tokens + call.request.max_tokens
        try:
            permit = self.limiter.acquire(
                call.deployment,
                tokens,
                horizon_s=self.horizon_s,
                reserved_at_ms=float(slot["at_ms"]) if slot else None,
                reserved_epoch=str(slot.get("epoch", "")) if slot else "",
            )
        except redis.RedisError as exc:
            reason = f"rate-limit state unreachable: {exc}"
            raise RateLimitWait(1 + self.rng.random(), reason) from exc
        call.progress.slot = None
        return permit, tokens

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
