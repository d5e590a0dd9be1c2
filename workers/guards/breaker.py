"""Circuit breakers per deployment, shared in Redis by every worker process.

    closed  --(failure ratio >= threshold over >= min_calls in a window)-->  open
    open    --(cool-down over; the next caller becomes the probe)-------->  half_open
    half_open --(probe answers)--> closed      half_open --(probe fails)--> open (longer)

While a deployment's breaker is open, or its probe is in flight, the guard skips
it without calling, so the job moves to the plan's next deployment. Only answers
that say the provider is unwell count as failures (5xx, 503/529 overload,
timeouts, broken connections); a 429 or a 4xx is a provider that works. If Redis
cannot be reached the breaker lets calls through: the rate limiter, which fails
closed, already holds them back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum

import redis

from orchestrator.core.batching import ScriptBatcher, is_alone
from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion
from workers.guards.base import Call, Guard, SkipDeployment
from workers.providers.errors import (
    ConnectionFailed,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    ServerError,
)

log = logging.getLogger(__name__)
UNHEALTHY = (ServerError, Overloaded, ProviderTimeout, ConnectionFailed)
SUCCESS_BATCH = 16  # successes of a closed breaker sent in one Redis call
SUCCESS_WAIT_S = 0.25  # or sooner, once this long has passed
CLOSED_FRESH_S = 0.02  # a "closed" read from Redis answers this process's calls this long

ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local h = redis.call('HMGET', KEYS[1], 'state', 'until')
local state, untl = h[1] or 'closed', tonumber(h[2]) or 0
if state == 'closed' then return {0, '0'} end
if now < untl then return {1, tostring(untl - now)} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'until', tostring(now + tonumber(ARGV[1])))
return {2, '0'}
"""

RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ok, window = ARGV[1] == '1', tonumber(ARGV[2])
local min_calls, ratio = tonumber(ARGV[3]), tonumber(ARGV[4])
local open_ms, max_open_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local earlier = tonumber(ARGV[7]) or 0  -- successes counted before this answer, not yet sent
local h = redis.call('HMGET', KEYS[1], 'state', 'start', 'calls', 'failures', 'trips')
local state, trips = h[1] or 'closed', tonumber(h[5]) or 0
local function open(n)
  local ms = math.min(max_open_ms, open_ms * 2 ^ (n - 1))
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', tostring(now + ms), 'trips', n)
end
if state == 'half_open' then
  if ok then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'start', tostring(now), 'calls', 0,
      'failures', 0, 'trips', 0)
    return 'closed'
  end
  open(trips + 1)
  return 'open'
end
if state == 'open' then return state end
local start, calls, failures = tonumber(h[2]) or now, tonumber(h[3]) or 0, tonumber(h[4]) or 0
if now - start > window then start, calls, failures = now, 0, 0 end
calls = calls + 1 + earlier
if not ok then failures = failures + 1 end
redis.call('HSET', KEYS[1], 'start', tostring(start), 'calls', calls, 'failures', failures)
redis.call('PEXPIRE', KEYS[1], 3600000)
if calls >= min_calls and failures >= ratio * calls then open(1) return 'open' end
return state
"""


class Decision(IntEnum):
    """What the breaker says about the next call."""

    ALLOW = 0
    DENY = 1
    PROBE = 2


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens, and for how long."""

    window_s: float = 30.0
    min_calls: int = 20
    failure_ratio: float = 0.5
    open_s: float = 10.0
    max_open_s: float = 120.0
    probe_timeout_s: float = 60.0


class CircuitBreaker:
    """The shared breakers, one Redis hash per deployment."""

    def __init__(self, client: redis.Redis, *, prefix: str = "", policy: BreakerPolicy) -> None:
        self.client = client
        self.prefix = prefix
        self.policy = policy
        # calls from threads asking at the same moment share one pipeline
        self._allow = ScriptBatcher(client, ALLOW)
        self._record = ScriptBatcher(client, RECORD)
        # when Redis last said closed, per breaker: calls within CLOSED_FRESH_S of it go
        # through without asking again (a breaker another process opened is seen that much
        # later; one this process's own answers open is forgotten at once)
        self._closed_at: dict[str, float] = {}
        # the read in flight per breaker: threads that miss the fresh reading at the same
        # moment (a batch message's jobs start together) wait for one read, not one each
        self._reading: dict[str, threading.Lock] = {}
        self._reading_lock = threading.Lock()

    def key(self, deployment: Deployment) -> str:
        return f"{self.prefix}switchyard:breaker:{deployment.name}"

    def allow(self, deployment: Deployment) -> tuple[Decision, float]:
        """May we call it now, and if not, in how many seconds may we ask again."""
        key, now = self.key(deployment), time.monotonic()
        if now - self._closed_at.get(key, -1e9) < CLOSED_FRESH_S:
            return Decision.ALLOW, 0.0
        if is_alone():  # an interactive call never waits on a batch thread's read
            return self._ask(key, now)
        with self._reading_lock:
            reading = self._reading.get(key)
            lead = reading is None
            if reading is None:
                reading = self._reading[key] = threading.Lock()
                reading.acquire()  # released when the read is in
        if not lead:  # another thread is asking: its "closed" answers this call too
            with reading:
                pass
            if now - self._closed_at.get(key, -1e9) < CLOSED_FRESH_S:
                return Decision.ALLOW, 0.0
        try:  # not closed (open or half-open: only Redis may hand out the probe), or no answer
            return self._ask(key, now)
        finally:
            if lead:
                with self._reading_lock:
                    del self._reading[key]
                reading.release()

    def _ask(self, key: str, now: float) -> tuple[Decision, float]:
        probe_ms = self.policy.probe_timeout_s * 1000
        decision, retry_ms = self._allow.call([key], [probe_ms])
        if int(decision) == Decision.ALLOW:
            self._closed_at[key] = now
        else:
            self._closed_at.pop(key, None)
        return Decision(int(decision)), float(retry_ms) / 1000

    def record(self, deployment: Deployment, *, ok: bool, earlier_successes: int = 0) -> str:
        """Count one answer (and ``earlier_successes`` before it); returns the state after."""
        p = self.policy
        args = [
            "1" if ok else "0",
            p.window_s * 1000,
            p.min_calls,
            p.failure_ratio,
            p.open_s * 1000,
            p.max_open_s * 1000,
            earlier_successes,
        ]
        state = self._record.call([self.key(deployment)], args)
        state = state.decode() if isinstance(state, bytes) else str(state)
        if state != "closed":
            self._closed_at.pop(self.key(deployment), None)
        return state

    def trip(self, deployment: Deployment, *, for_s: float) -> None:
        """Open the breaker by hand (operators, tests)."""
        until = float(self.client.time()[0]) * 1000 + for_s * 1000
        self.client.hset(self.key(deployment), mapping={"state": "open", "until": until})
        self._closed_at.pop(self.key(deployment), None)

    def state(self, deployment: Deployment) -> str:
        value = self.client.hget(self.key(deployment), "state")
        return value.decode() if isinstance(value, bytes) else "closed"


@dataclass
class CircuitBreakerGuard(Guard):
    """Skips deployments whose breaker is open; feeds every answer back to the breaker.

    Failures, and the answer of a half-open breaker's probe, are counted at once.
    Successes of a closed breaker are counted in this process and sent together
    (``SUCCESS_BATCH`` of them, or what gathered in ``SUCCESS_WAIT_S``, or with
    the next failure): one Redis call instead of one an answer. Meanwhile the
    shared failure ratio can only read high, never low, so a breaker may open a
    few answers early but never late.
    """

    breaker: CircuitBreaker
    _probing: threading.local = field(default_factory=threading.local, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _successes: dict[str, tuple[Deployment, int]] = field(default_factory=dict, init=False)
    _sent_at: float = field(default_factory=time.monotonic, init=False)

    def before_call(self, call: Call) -> None:
        self._probing.name = None
        try:
            decision, retry_in_s = self.breaker.allow(call.deployment)
        except redis.RedisError as exc:
            log.warning("breaker state for %s unreachable: %s", call.name, exc)
            return
        if decision is Decision.DENY:
            raise SkipDeployment(f"{call.name}: circuit open", retry_in_s=retry_in_s)
        if decision is Decision.PROBE:
            self._probing.name = call.name

    def after_success(self, call: Call, completion: Completion) -> None:
        if getattr(self._probing, "name", None) == call.name:  # a probe's answer closes it now
            self._record(call.deployment, ok=True)
            return
        with self._lock:
            _, count = self._successes.get(call.name, (call.deployment, 0))
            self._successes[call.name] = (call.deployment, count + 1)
            due = count + 1 >= SUCCESS_BATCH or time.monotonic() - self._sent_at >= SUCCESS_WAIT_S
            if not due:
                return
            batch, self._successes, self._sent_at = self._successes, {}, time.monotonic()
        for deployment, n in batch.values():
            self._record(deployment, ok=True, earlier=n - 1)

    def after_failure(self, call: Call, error: ProviderError) -> None:
        with self._lock:
            _, earlier = self._successes.pop(call.name, (call.deployment, 0))
        self._record(call.deployment, ok=not isinstance(error, UNHEALTHY), earlier=earlier)

    def _record(self, deployment: Deployment, *, ok: bool, earlier: int = 0) -> None:
        try:
            self.breaker.record(deployment, ok=ok, earlier_successes=earlier)
        except redis.RedisError as exc:
            log.warning("breaker update for %s failed: %s", deployment.name, exc)
