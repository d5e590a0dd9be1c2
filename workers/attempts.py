"""One delivery's attempt loop over a job's route plan, driven by the guards' signals.

    for each deployment of the plan (skipping those earlier deliveries used up):
        guards.before_call      may skip it, make us wait, or hand the job back
        provider call           -> success: guards.after_success, done
                                -> ProviderError: record the attempt, guards.after_failure
                                   decide: retry here (now, or later), next deployment, or fail

The loop knows nothing of breakers, limits or backoff: it reacts to the
``GuardSignal`` tree only. A short wait is slept here; a long one ends this
delivery with a ``Verdict`` that hands the job back (``deferred``), so the worker
slot serves another job meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.schemas import Completion, JobRequest
from orchestrator.core.tokens import estimate_request_tokens
from orchestrator.store.models import Job, as_utc, utcnow
from workers.guards import (
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
from workers.lease import Held
from workers.providers import ProviderError

INLINE_WAIT_S = 2.5
"""A retry due within this many seconds is slept in the worker; a later one is handed back
(a provider's usual ``Retry-After: 1`` is slept through, not a round trip via the reconciler)."""


class Ending(StrEnum):
    """How one delivery of a job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEFERRED = "deferred"
    EXPIRED = "expired"
    LOST = "lost"


@dataclass(frozen=True)
class Verdict:
    """What the loop decided, for the runtime to write down."""

    ending: Ending
    error: str | None = None
    delay_s: float = 0.0
    waiting: bool = False  # deferred without a failed call (rate limit, open breakers)
    deployment: Deployment | None = None
    completion: Completion | None = None
    latency_ms: int = 0
    progress: dict[str, Any] | None = None
    cache_hit: bool = False  # answered from the response cache (a guard's ``Answered``)


Caller = Callable[[Deployment, JobRequest], Completion]
FailureRecorder = Callable[[Deployment, ProviderError, int, Progress], None]
Reviewer = Callable[[Call, Completion, int], None]
"""Checks an answer (``workers.checks``); raises a ``GuardSignal`` to repair or escalate."""


def _accept(call: Call, completion: Completion, latency_ms: int) -> None:
    """The default review: every answer is good."""


@dataclass
class AttemptLoop:
    """Runs one delivery of one job: the plan, the guards, the calls."""

    job: Job
    catalog: Catalog
    guards: Sequence[Guard]
    call_provider: Caller
    record_failure: FailureRecorder
    held: Held
    sleep: Callable[[float], None] = time.sleep
    review: Reviewer = _accept

    def run(self) -> Verdict:
        """Run the plan; the verdict carries the progress to keep for the next delivery.

        A stored request that is no longer valid (its schema stored before admission
        refused such schemas) fails the job before any call: it would fail every time.
        """
        try:
            request = JobRequest.model_validate(self.job.request)
        except ValidationError as exc:
            return Verdict(Ending.FAILED, f"the stored request is not valid: {_first(exc)}")
        progress = Progress.from_json(self.job.progress)
        verdict = self._plan(request, progress)
        return replace(verdict, progress=progress.to_json())

    def _plan(self, request: JobRequest, progress: Progress) -> Verdict:
        tokens = estimate_request_tokens(request.canonical_messages())
        last_error, wake_in_s = "the route plan is empty", None
        for name in self.job.plan:
            deployment = self.catalog.find(name)
            if deployment is None:
                last_error = f"deployment {name!r} is no longer in the catalog"
                continue
            call = Call(
                self.job.id,
                deployment,
                request,
                progress,
                tokens,
                tier=self.job.tier,
                tenant_id=self.job.tenant_id,
            )
            try:
                return self._on_deployment(call)
            except SkipDeployment as skip:
                last_error = skip.reason
                if skip.retry_in_s is not None:
                    wake_in_s = min(wake_in_s or skip.retry_in_s, skip.retry_in_s)
        if wake_in_s is not None:
            return Verdict(Ending.DEFERRED, last_error, wake_in_s, waiting=True)
        return Verdict(Ending.FAILED, f"every deployment of the plan failed; last: {last_error}")

    def _on_deployment(self, call: Call) -> Verdict:
        """Call one deployment until it answers or a guard moves us on (SkipDeployment)."""
        while True:
            stop = self._stop_reason()
            if stop is not None:
                return stop
            try:
                return self._attempt(call)
            except FailJob as fail:
                return Verdict(Ending.FAILED, fail.reason)
            except Answered as answered:  # a response-cache hit: no provider call
                completion, deployment = answered.completion, call.deployment
                return Verdict(
                    Ending.SUCCEEDED, deployment=deployment, completion=completion, cache_hit=True
                )
            except RetryAfter as wait:
                if isinstance(wait, RateLimitWait) or wait.delay_s > INLINE_WAIT_S:
                    waiting = isinstance(wait, RateLimitWait)
                    return Verdict(Ending.DEFERRED, wait.reason, wait.delay_s, waiting=waiting)
                self.sleep(wait.delay_s)

    def _stop_reason(self) -> Verdict | None:
        if self.held.lost.is_set():
            return Verdict(Ending.LOST, "the lease was lost")
        deadline = self.job.deadline_at
        if deadline is not None and as_utc(deadline) <= utcnow():
            return Verdict(Ending.EXPIRED, "deadline passed before the job could finish")
        return None

    def _attempt(self, call: Call) -> Verdict:
        for guard in self.guards:
            guard.before_call(call)
        started = time.perf_counter()
        try:
            completion = self.call_provider(call.deployment, call.request)
        except ProviderError as error:
            latency_ms = int((time.perf_counter() - started) * 1000)
            call.progress.tries[call.name] = call.progress.tries.get(call.name, 0) + 1
            self.record_failure(call.deployment, error, latency_ms, call.progress)
            raise self._after_failure(call, error) from error
        latency_ms = int((time.perf_counter() - started) * 1000)
        for guard in self.guards:
            guard.after_success(call, completion)
        self.review(call, completion, latency_ms)
        for guard in self.guards:  # the answer passed every check: it is the job's answer
            guard.after_accepted(call, completion)
        return Verdict(
            Ending.SUCCEEDED,
            deployment=call.deployment,
            completion=completion,
            latency_ms=latency_ms,
        )

    def _after_failure(self, call: Call, error: ProviderError) -> GuardSignal:
        """Every guard sees the failure; the first signal raised decides."""
        decided: GuardSignal | None = None
        for guard in self.guards:
            try:
                guard.after_failure(call, error)
            except GuardSignal as signal:
                decided = decided or signal
        return decided or FailJob(str(error))


def _first(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "request"
    return f"{where}: {first['msg']}"[:500]
