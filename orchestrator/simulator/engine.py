"""The simulator's per-request pipeline, shared by the three wire formats.

``Engine`` holds the mutable state (config, statistics, rate limiter, prompt
cache, recent request bodies, provider batches and uploaded files) and decides,
for one parsed call: refuse it for the context window or the rate limit, pick
its latency, inject a failure, or answer. A provider batch's line is answered by
``answer_line``: the same window and answer, without the rate limiter.
Everything is in-process and single-threaded (one asyncio loop), so no locks
are needed, and every step is O(1) in the history.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from orchestrator.simulator.batch_files import FileStore
from orchestrator.simulator.batch_store import BatchStore
from orchestrator.simulator.config import ErrorKind, Profile, SimulatorConfig
from orchestrator.simulator.faults import Faults
from orchestrator.simulator.limiter import RateLimiter
from orchestrator.simulator.stats import Stats
from orchestrator.simulator.wire import (
    FAILURES,
    MIN_CACHEABLE_TOKENS,
    Answer,
    SimCall,
    SimError,
    generate,
    header_ms,
    injected_failure,
    seed_of,
)

LATENCY_HEADER = "x-simulator-latency-ms"
JITTER_HEADER = "x-simulator-jitter-ms"
FAIL_HEADER = "x-simulator-fail"
RECENT_PER_MODEL = 20
CACHE_ENTRIES = 50_000
_KEY_HEADERS = ("x-api-key", "x-goog-api-key")


def api_key_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The caller's API key, however its format sends it ('' when none)."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for name in _KEY_HEADERS:
        if headers.get(name):
            return headers[name]
    return query.get("key", "")


def _check_window(fmt: ModuleType, call: SimCall, profile: Profile) -> None:
    """Raise the format's context error when prompt + max_tokens exceed the window."""
    window = profile.context_window
    reserved = call.max_tokens or 0
    if window is not None and call.prompt_tokens + reserved > window:
        error: SimError = fmt.context_error(window, call.prompt_tokens, reserved)
        raise error


@dataclass(slots=True)
class Admitted:
    """A call that passed the window and the limiter: its answer and rate-limit headers."""

    answer: Answer
    headers: dict[str, str]


class Engine:
    """State and decisions behind every simulated provider endpoint."""

    def __init__(
        self, config: SimulatorConfig, latency_ms: float = 0.0, jitter_ms: float = 0.0
    ) -> None:
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        self.config = config
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.rng = random.Random()
        self.batches = BatchStore()  # batches and files outlive reset(): delete them by API
        self.files = FileStore()
        self.reset()

    def reset(self) -> None:
        """Zero the counters and forget limiter windows, cached prefixes and recent bodies."""
        self.batches.expired_by_model.clear()
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.recent: dict[str, deque[dict[str, Any]]] = {}
        self.faults = Faults()

    def received(self, call: SimCall, fmt: str, body: object, now_s: float) -> Profile:
        """Count the request, keep its body for ``/_sim/requests``; its model's profile."""
        self.stats.received(call.model, now_s)
        recent = self.recent.get(call.model)
        if recent is None:
            recent = self.recent[call.model] = deque(maxlen=RECENT_PER_MODEL)
        recent.append({"format": fmt, "body": body})
        return self.config.profile(call.model)

    def delay_s(self, headers: Mapping[str, str], profile: Profile) -> float:
        """This request's latency: the header's, or the server-wide one plus the profile's."""
        override = headers.get(LATENCY_HEADER)
        jitter = header_ms(headers.get(JITTER_HEADER), self.jitter_ms, JITTER_HEADER)
        if override is not None:
            base = header_ms(override, 0.0, LATENCY_HEADER)
        else:
            base = self.latency_ms + profile.sample_latency_ms(self.rng)
        if jitter > 0:
            base += self.rng.uniform(-jitter, jitter)
        return max(0.0, base) / 1000.0

    def admit(
        self, fmt: ModuleType, call: SimCall, profile: Profile, key: str, now_s: float
    ) -> Admitted:
        """Check the context window and the rate limits; raises the format's ``SimError``."""
        _check_window(fmt, call, profile)
        answer = generate(call)
        self.faults.apply(call, answer, profile)  # invalid JSON / refusals on purpose
        tokens = call.prompt_tokens + answer.output_tokens
        decision = self.limiter.admit(key, call.model, tokens, profile, now_s)
        if not decision.admitted:
            limited: SimError = fmt.rate_limit_error(decision)
            raise limited
        return Admitted(answer, fmt.limit_headers(decision))

    def answer_line(self, fmt: ModuleType, call: SimCall, batch_id: str = "") -> Answer:
        """A batch line's answer, or its ``SimError`` (window, then ``batch_line_error_rate``).

        The line's 500 is a server error of that delivery, as a provider's is: it is
        drawn per (input, batch), so the same input sent again in another batch is
        drawn again (and answered synchronously as usual)."""
        profile = self.config.profile(call.model)
        _check_window(fmt, call, profile)
        answer = generate(call)
        self.faults.apply(call, answer, profile)
        rate = profile.batch_line_error_rate
        topic = seed_of("batch_line", call.topic or call.seed, batch_id)
        draw = profile.fault_draw
        if rate > 0 and self.faults.picked(call.model, "batch_line", topic, rate, draw):
            raise self.error_for("500")
        return answer

    def injected(self, headers: Mapping[str, str], profile: Profile) -> ErrorKind | SimError | None:
        """The failure to inject: a config error kind, the header's failure, or none."""
        kind = profile.draw_error(self.rng)
        if kind is not None:
            return kind
        fail = headers.get(FAIL_HEADER)
        return injected_failure(fail) if fail else None

    @staticmethod
    def error_for(kind: ErrorKind) -> SimError:
        """The error answer for a config-injected kind (``timeout`` after its hang)."""
        if kind == "timeout":
            return SimError(504, "The request timed out.", "timeout", stat="timeout")
        status, error_kind, code, message, headers = FAILURES[kind]
        return SimError(status, message, error_kind, code=code, headers=dict(headers))

    def apply_cache(self, call: SimCall, answer: Answer, writes_reported: bool) -> None:
        """Mark the cached part of the prompt, and remember its prefix for next time."""
        if call.prefix_key is None or call.prefix_tokens < MIN_CACHEABLE_TOKENS:
            return
        if call.prefix_key in self.cache:
            self.cache.move_to_end(call.prefix_key)
            answer.cached_tokens = call.prefix_tokens
            return
        self.cache[call.prefix_key] = None
        if len(self.cache) > CACHE_ENTRIES:
            self.cache.popitem(last=False)
        if writes_reported:
            answer.cache_write_tokens = call.prefix_tokens

    def served(self, call: SimCall, answer: Answer, now_s: float) -> None:
        self.stats.served(call.model, call.prompt_tokens, answer.output_tokens, now_s)

    def failed(self, model: str, error: SimError) -> None:
        self.stats.failed(model, error.stat, rate_limited=error.status == 429)

    def recent_requests(self, model: str) -> list[dict[str, Any]]:
        return list(self.recent.get(model, ()))
