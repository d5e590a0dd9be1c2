"""The response cache in the worker: answer from it, or wait for the identical call in flight.

Before a call, for a request whose ``cache`` mode (resolved at admission) is:

    read    a cached answer ends the job (``Answered``: no provider call, cost 0)
    on      the same, and on a miss the single-flight lock decides: the first job
            takes it and calls the provider; the others wait (``RetryAfter`` of
            POLL_S, slept in the worker) until its answer is cached, then answer
            from the cache. After taking the lock the cache is read once more, so
            a job that missed just before the answer was written does not call again.
    write   nothing before the call
    off     nothing at all

Once an answer is accepted (it answered and passed the output checks), ``write``
and ``on`` store it (with its tier and deployment) and release the lock; after a
failed call the lock is released so a waiting job can try. A lock whose holder died expires after
``response_cache_wait_s``.
"""

from __future__ import annotations

import threading

from orchestrator.cache.responses import (
    READS,
    RESPONSE_CACHE,
    WRITES,
    CachedAnswer,
    ResponseCache,
    request_digest,
)
from orchestrator.core.schemas import Completion
from workers.guards.base import Answered, Call, Guard, RetryAfter
from workers.providers.errors import ProviderError

POLL_S = 0.05


class ResponseCacheGuard(Guard):
    """Exact-match response cache with single-flight coalescing (see the module docstring)."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._local = threading.local()

    def _digest(self, call: Call) -> str:
        """The request's digest, computed once per ``Call`` (the loop may retry it)."""
        memo = getattr(self._local, "memo", None)
        if memo is not None and memo[0] is call:
            return str(memo[1])
        digest = request_digest(call.request)
        self._local.memo = (call, digest)
        return digest

    def before_call(self, call: Call) -> None:
        mode = call.request.cache
        if mode not in READS:
            return
        digest = self._digest(call)
        self._answer_if_cached(call, digest)
        if mode != "on":
            RESPONSE_CACHE.labels("worker", "miss").inc()
            return
        if self.cache.lock(call.tenant_id, digest, call.job_id):
            self._answer_if_cached(call, digest, unlock=True)
            RESPONSE_CACHE.labels("worker", "miss").inc()
            return
        if self.cache.holder(call.tenant_id, digest) == call.job_id:
            return  # our own lock, from an earlier try of this job
        RESPONSE_CACHE.labels("worker", "wait").inc()
        raise RetryAfter(POLL_S, "an identical request is in flight; waiting for its answer")

    def _answer_if_cached(self, call: Call, digest: str, *, unlock: bool = False) -> None:
        entry = self.cache.get(call.tenant_id, digest)
        if entry is None:
            return
        if unlock:
            self.cache.unlock(call.tenant_id, digest, call.job_id)
        RESPONSE_CACHE.labels("worker", "hit").inc()
        raise Answered(entry.completion())

    def after_accepted(self, call: Call, completion: Completion) -> None:
        """Store the job's answer (only once the output checks accepted it)."""
        mode = call.request.cache
        if mode not in WRITES:
            return
        digest = self._digest(call)
        answer = CachedAnswer.of(completion, tier=call.tier, deployment=call.deployment)
        self.cache.put(call.tenant_id, digest, answer)
        RESPONSE_CACHE.labels("worker", "write").inc()
        if mode == "on":
            self.cache.unlock(call.tenant_id, digest, call.job_id)

    def after_failure(self, call: Call, error: ProviderError) -> None:
        if call.request.cache == "on":
            self.cache.unlock(call.tenant_id, self._digest(call), call.job_id)
