"""Live statistics per deployment, shared in Redis: latency model and error rate.

Workers record every call (``workers.guards.livestats``; sent in the background, a
failure at most ``ScriptBatcher.SEND_EVERY_S`` later and an answered call at most
``ANSWERS_EVERY_S``, a deployment's answered calls of that time in one script call that
folds them in one by one); the dispatcher reads
them to predict each candidate's latency (``orchestrator.routing.objective``).
One Redis hash per deployment holds exponentially weighted moving averages
(weight ``alpha`` for the newest call) of:

    x   output tokens of a successful call        y    its latency in ms
    xx  x squared                                 xy   x times y
    ttft  time to first token in ms, when the adapter measured it (streaming)
    err   1 for a failed call, 0 for a successful one

A call's latency is modelled as ``ttft_ms + output_tokens * ms_per_token``: the
slope and intercept are the weighted least-squares fit of y on x, taken from the
moving moments (so old calls fade out). When output lengths barely vary the
slope cannot be told apart from the intercept; the prediction is then the mean
latency. A measured ``ttft`` replaces the fitted intercept.

Reads are cached in the process for ``ttl_s`` (a second): admission stays one
dictionary lookup per request, not a Redis round trip. If Redis cannot be read,
predictions fall back to the prior (``PRIOR``) rather than refusing work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from orchestrator.core.batching import Later, ScriptBatcher
from orchestrator.core.loop_guard import needs_io

log = logging.getLogger(__name__)

MIN_VARIANCE_TOKENS2 = 25.0
"""Below this variance of output length (tokens^2) the slope is not fitted."""

RECORD_OK = """
local a, expire = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'n', 'x', 'y', 'xx', 'xy', 'err', 'ttft')
local n = tonumber(h[1]) or 0
local mx, my, mxx, mxy = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
local e, t = tonumber(h[6]), tonumber(h[7])
local function ewma(old, new)
  if n == 0 or old == nil then return new end
  return old + a * (new - old)
end
for i = 3, #ARGV, 3 do  -- each call in the order it was recorded: x, y, ttft
  local x, y, ttft = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  mx, my, mxx, mxy = ewma(mx, x), ewma(my, y), ewma(mxx, x * x), ewma(mxy, x * y)
  if e == nil then e = 0 else e = e + a * (0 - e) end
  if ttft >= 0 then t = (t == nil) and ttft or (t + a * (ttft - t)) end
  n = n + 1
end
redis.call('HSET', KEYS[1], 'n', n, 'x', mx, 'y', my, 'xx', mxx, 'xy', mxy, 'err', e)
if t ~= nil then redis.call('HSET', KEYS[1], 'ttft', t) end
redis.call('EXPIRE', KEYS[1], expire)
return n
"""

RECORD_FAIL = """
local a = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'err', 'fails')
local err = tonumber(h[1])
if err == nil then err = 1 else err = err + a * (1 - err) end
redis.call('HSET', KEYS[1], 'err', err, 'fails', (tonumber(h[2]) or 0) + 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


@dataclass(frozen=True)
class DeploymentStats:
    """What the recent calls to one deployment say about its speed and health."""

    samples: int
    ttft_ms: float
    ms_per_output_token: float
    error_rate: float
    mean_output_tokens: float | None = None

    @property
    def output_tokens_per_s(self) -> float | None:
        """Generation speed (None when no slope could be fitted)."""
        if self.ms_per_output_token <= 0:
            return None
        return 1000.0 / self.ms_per_output_token

    def predict_ms(self, output_tokens: float) -> float:
        """Predicted latency of a call that generates ``output_tokens``."""
        return self.ttft_ms + max(0.0, output_tokens) * self.ms_per_output_token

    def as_json(self) -> dict[str, float | int | None]:
        tps = self.output_tokens_per_s
        return {
            "samples": self.samples,
            "ttft_ms": round(self.ttft_ms, 1),
            "output_tokens_per_s": None if tps is None else round(tps, 1),
            "error_rate": round(self.error_rate, 4),
        }


ANSWERS_EVERY_S = 0.25
"""How often a process sends its answered calls: readers keep what they read for ``ttl_s``
(1 s) anyway, and at 50 calls a second every 50 ms sent them nearly one a script call."""
PRIOR = DeploymentStats(samples=0, ttft_ms=500.0, ms_per_output_token=20.0, error_rate=0.0)
"""Before any call is seen: half a second to the first token, then 50 tokens/s."""


def stats_from_hash(raw: Mapping[bytes, bytes]) -> DeploymentStats:
    """Turn one Redis hash (the moving moments) into a latency model."""
    field = {k.decode(): float(v) for k, v in raw.items()}
    n = int(field.get("n", 0))
    err = field.get("err", 0.0)
    if n == 0:
        return DeploymentStats(0, PRIOR.ttft_ms, PRIOR.ms_per_output_token, err)
    mx, my = field["x"], field["y"]
    var = field["xx"] - mx * mx
    slope = 0.0
    if var > MIN_VARIANCE_TOKENS2:
        slope = max(0.0, (field["xy"] - mx * my) / var)
    intercept = max(0.0, my - slope * mx)
    if "ttft" in field:
        intercept = field["ttft"]
        slope = max(0.0, (my - intercept) / mx) if mx > 0 else 0.0
    return DeploymentStats(n, intercept, slope, err, mean_output_tokens=mx)


class LiveStats:
    """The shared statistics: workers write, the dispatcher reads (cached)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "",
        alpha: float = 0.1,
        ttl_s: float = 1.0,
        expire_s: int = 7 * 86_400,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.alpha = alpha
        self.ttl_s = ttl_s
        self.expire_s = expire_s
        # records are sent in the background, many to a pipeline: failures up to 50 ms
        # later, successes up to ANSWERS_EVERY_S later, a deployment's gathered meanwhile in
        # one script call, applied in order
        self._ok = ScriptBatcher(client, RECORD_OK)
        self._fail = ScriptBatcher(client, RECORD_FAIL)
        self._answered: dict[str, list[float]] = {}  # key -> x, y, ttft, x, y, ttft, ...
        self._answered_lock = threading.Lock()
        self._answers: Later[str] = Later(
            self._send_answered,
            name="switchyard-live-stats",
            every_s=ANSWERS_EVERY_S,
        )
        self._cache: dict[str, DeploymentStats] = {}
        self._cached_at = -1e9
        self._lock = threading.Lock()

    def key(self, deployment: str) -> str:
        return f"{self.prefix}switchyard:stats:{deployment}"

    def record_success(
        self, deployment: str, *, latency_ms: float, output_tokens: int, ttft_ms: float | None
    ) -> None:
        """Fold one answered call into the deployment's moving averages (sent shortly)."""
        ttft = -1.0 if ttft_ms is None else ttft_ms
        key = self.key(deployment)
        with self._answered_lock:
            self._answered.setdefault(key, []).extend((output_tokens, latency_ms, ttft))
        self._answers.put(key, None)

    def _send_answered(self, keys: dict[str, object]) -> None:
        with self._answered_lock:
            answered, self._answered = self._answered, {}
        if answered:  # one call per deployment, in one pipeline
            calls = [([k], [self.alpha, self.expire_s, *v]) for k, v in answered.items()]
            self._ok.send_now(calls)

    def record_failure(self, deployment: str) -> None:
        """Fold one failed call into the deployment's error rate (sent shortly)."""
        self._fail.send([self.key(deployment)], [self.alpha, self.expire_s])

    def flush(self) -> None:
        """Send the records this process has not sent yet."""
        self._answers.flush()
        self._fail.flush()

    def read(self, names: Iterable[str]) -> dict[str, DeploymentStats]:
        """Fresh statistics for these deployments, straight from Redis."""
        names = list(names)
        self.flush()  # this process's own records first
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.key(name))
        return {n: stats_from_hash(raw) for n, raw in zip(names, pipe.execute(), strict=True)}

    def snapshot(self, names: Iterable[str]) -> dict[str, DeploymentStats]:
        """Statistics at most ``ttl_s`` old; the prior for every name if Redis is down."""
        names = list(names)
        now = time.monotonic()
        with self._lock:
            if now - self._cached_at < self.ttl_s and all(n in self._cache for n in names):
                return dict(self._cache)
        needs_io("live statistics")
        try:
            fresh = self.read(names)
        except redis.RedisError as exc:
            log.warning("live stats unreadable, predicting from the prior: %s", exc)
            fresh = {n: PRIOR for n in names}
        with self._lock:
            self._cache, self._cached_at = fresh, now
        return dict(fresh)


_installed: LiveStats | None = None


def install(stats: LiveStats | None) -> None:
    """Make ``stats`` this process's source for route plans (None: predict from the prior)."""
    global _installed
    _installed = stats


def current(names: Iterable[str]) -> dict[str, DeploymentStats] | None:
    """The installed statistics for these deployments (cached), or None if none installed."""
    return None if _installed is None else _installed.snapshot(names)
