"""The API's fast path for a response-cache hit: answer at once, still write it down.

A request whose mode reads the cache and whose answer is there becomes a job
that is already ``succeeded``: one job row (``cache_hit``), one attempt and one
zero-cost ledger row (``cache_hit``), written in a single transaction of three
inserts, with no queue, worker or provider involved; for chat completions the
rows are written behind the answer (``orchestrator.cache.hit_writer``). The job keeps the
deployment that made the answer, so ``GET /v1/jobs/{id}`` says where it came
from. A hit's ``callback_url`` is checked as admission checks a miss's: the job
it makes is notified like any other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from orchestrator.cache.hit_writer import HitWriter, write_hits
from orchestrator.cache.responses import (
    READS,
    RESPONSE_CACHE,
    CachedAnswer,
    ResponseCache,
    effective_mode,
    request_digest,
)
from orchestrator.core.config import Settings
from orchestrator.core.loop_guard import needs_io
from orchestrator.core.schemas import JobRequest, JobStatus, Priority
from orchestrator.queues.app import PRIORITY_VALUE
from orchestrator.store.db import session_scope
from orchestrator.store.models import Job, Tenant, new_id, utcnow
from orchestrator.store.tenants import Caller
from orchestrator.wire.webhooks import check_callback_url

TENANT_MODE_S = 5.0
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")


class RateGate(Protocol):
    """A tenant's request rate limit (``orchestrator.api.limits.TenantRateLimiter``)."""

    async def acheck(self, tenant_id: str, rpm: int | None) -> None: ...

    async def acheck_then_get(self, tenant_id: str, rpm: int | None, key: str) -> bytes | None: ...


@dataclass
class TenantModes:
    """Each tenant's default cache mode, re-read from the database every few seconds."""

    engine: Engine
    entries: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, tenant_id: str) -> tuple[bool, bool, str | None]:
        """(known, fresh, mode) from memory only: no database read."""
        with self.lock:
            hit = self.entries.get(tenant_id)
        if hit is None:
            return False, False, None
        return True, hit[0] > time.monotonic(), hit[1]

    def get(self, tenant_id: str) -> str | None:
        """The tenant's mode, read from the database if not known or older than 5 s."""
        _, fresh, mode = self.cached(tenant_id)
        if fresh:
            return mode
        return self.refresh(tenant_id)

    def claim_refresh(self, tenant_id: str) -> bool:
        """True for the one caller that should re-read a stale entry (others keep it)."""
        with self.lock:
            hit = self.entries.get(tenant_id)
            if hit is None or hit[0] > time.monotonic():
                return False
            self.entries[tenant_id] = (time.monotonic() + TENANT_MODE_S, hit[1])
            return True

    def refresh(self, tenant_id: str) -> str | None:
        """Read the tenant's mode from the database now."""
        needs_io("the tenant's cache mode")
        with session_scope(self.engine) as session:
            mode = session.scalar(select(Tenant.response_cache).where(Tenant.id == tenant_id))
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[tenant_id] = (time.monotonic() + TENANT_MODE_S, mode)
        return mode


@dataclass
class CacheFront:
    """Resolves a request's cache mode and answers hits before anything is queued."""

    settings: Settings
    engine: Engine
    cache: ResponseCache
    modes: TenantModes
    writer: HitWriter = field(init=False)

    def __post_init__(self) -> None:
        self.writer = HitWriter(self.engine)

    def resolve(self, tenant_id: str, request: JobRequest) -> JobRequest:
        """The request with its effective ``cache`` mode filled in (stored with the job)."""
        mode = effective_mode(request, self.modes.get(tenant_id))
        return request if request.cache == mode else request.model_copy(update={"cache": mode})

    def answer(self, tenant_id: str, request: JobRequest) -> str | None:
        """The id of a job answered from the cache, or None (then queue it as usual)."""
        job = self.answer_job(tenant_id, request)
        return job.id if job is not None else None

    async def lookup(
        self, limiter: RateGate, caller: Caller, request: JobRequest
    ) -> tuple[JobRequest, Job | None]:
        """The tenant's rate limit, ``resolve`` and ``answer_job`` on the event loop.

        No thread hop and one Redis round trip on a hit (chat completions): the
        tenant's mode comes from memory (re-read from the database in the
        background when older than 5 s), the rate limit and the entry from one
        script, and the rows go to the ``HitWriter``'s queue. Raises
        ``RateLimited`` as ``TenantRateLimiter.acheck`` does.
        """
        tenant_id = caller.tenant_id
        known, fresh, tenant_mode = self.modes.cached(tenant_id)
        if not known:
            tenant_mode = await run_in_threadpool(self.modes.refresh, tenant_id)
        elif not fresh and self.modes.claim_refresh(tenant_id):  # re-read in the background
            asyncio.get_running_loop().run_in_executor(None, self.modes.refresh, tenant_id)
        mode = effective_mode(request, tenant_mode)
        request = request if request.cache == mode else request.model_copy(update={"cache": mode})
        if mode not in READS:
            await limiter.acheck(tenant_id, caller.rate_limit_rpm)
            return request, None
        key = self.cache.key(tenant_id, request_digest(request))
        raw = await limiter.acheck_then_get(tenant_id, caller.rate_limit_rpm, key)
        entry = CachedAnswer.loads(raw) if raw is not None else None
        RESPONSE_CACHE.labels("api", "hit" if entry else "miss").inc()
        if entry is None:
            return request, None
        if request.callback_url is not None:  # resolves a host name: off the event loop
            await run_in_threadpool(self.check_callback, request)
        return request, self._hit(tenant_id, request, entry, behind=True)

    def answer_job(
        self, tenant_id: str, request: JobRequest, *, behind: bool = False
    ) -> Job | None:
        """The job (detached) answered from the cache, or None on a miss.

        Its rows are committed before this returns, or with ``behind`` queued to the
        process's ``HitWriter`` (written within about 0.25 s; see ``hit_writer``).
        """
        if request.cache not in READS:
            return None
        entry = self.cache.get(tenant_id, request_digest(request))
        RESPONSE_CACHE.labels("api", "hit" if entry else "miss").inc()
        if entry is None:
            return None
        self.check_callback(request)
        return self._hit(tenant_id, request, entry, behind=behind)

    def check_callback(self, request: JobRequest) -> None:
        """Refuse a hit's ``callback_url`` as admission refuses a miss's (a 422)."""
        if request.callback_url is not None:
            check_callback_url(
                request.callback_url, allow_private=self.settings.webhook_allow_private
            )

    def _hit(
        self, tenant_id: str, request: JobRequest, entry: CachedAnswer, *, behind: bool
    ) -> Job:
        rows = hit_rows(tenant_id, request, entry, deadline_s=self.settings.job_deadline_s)
        if behind:
            self.writer.submit(rows)
        else:
            write_hits(self.engine, [rows])
        return Job(**rows["job"])


def hit_rows(
    tenant_id: str, request: JobRequest, entry: CachedAnswer, *, deadline_s: int
) -> dict[str, dict[str, Any]]:
    """The job, attempt and ledger rows of one cache hit (zero tokens, zero cost)."""
    now = utcnow()
    job_id, attempt_id = new_id("job"), new_id("att")
    where = {"deployment": entry.deployment, "provider": entry.provider, "model": entry.model}
    job = {
        "id": job_id,
        "tenant_id": tenant_id,
        "custom_id": request.custom_id,
        "callback_url": request.callback_url,
        "status": JobStatus.SUCCEEDED.value,
        "tier": entry.tier,
        "tier_reasons": ["answered from the response cache"],
        "plan": [entry.deployment],
        "routing": [],
        "priority": PRIORITY_VALUE[Priority.INTERACTIVE],
        "request": request.model_dump(mode="json", exclude_none=True),
        "output": entry.text,
        "tool_calls": entry.tool_calls or None,
        "finish_reason": entry.finish_reason,
        **where,
        **dict.fromkeys(TOKEN_COLUMNS, 0),
        "cost_micro_usd": 0,
        "latency_ms": 0,
        "attempts": 1,
        "cache_hit": True,
        "created_at": now,
        "started_at": now,
        "finished_at": now,
        "deadline_at": now + timedelta(seconds=deadline_s),
    }
    attempt: dict[str, Any] = {"id": attempt_id, "job_id": job_id, "tenant_id": tenant_id}
    attempt.update(where, outcome="ok", latency_ms=0, cache_hit=True, started_at=now)
    ledger: dict[str, Any] = {"tenant_id": tenant_id, "job_id": job_id, "attempt_id": attempt_id}
    ledger.update(where, tier=entry.tier, input_tokens=0, output_tokens=0, cost_micro_usd=0)
    ledger.update(cache_hit=True, created_at=now)
    return {"job": job, "attempt": attempt, "ledger": ledger}
