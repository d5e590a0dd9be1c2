"""The response cache: exact-match answers in Redis, scoped by tenant, with a TTL.

    key      sha256 of the canonical request (messages with the system prompt first,
             model/tier/quality, every generation parameter, tools, response format),
             stored under ``<prefix>switchyard:rcache:<tenant>:<sha256>``; ids, metadata,
             webhooks, ``stream``, ``cache`` and ``session_id`` are not part of it
    mode     ``effective_mode``: a session turn or pipeline is never cached; else the request's
             ``cache``; else the tenant's default; else ``on`` for ``temperature: 0``
    single   identical ``on`` requests in flight are coalesced: the first takes a
    flight   lock (``SET NX``) and calls the provider, the others wait for its answer

Both the API (a hit answers without queueing) and the workers (a hit or a
coalesced wait before the provider call) use ``ResponseCache``. A cached answer
is stored with the deployment that made it; a hit bills nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from prometheus_client import Counter

from orchestrator.core.schemas import CacheMode, Completion, JobRequest, ToolCall, Usage

log = logging.getLogger(__name__)

NOT_IN_KEY = frozenset(
    {
        "messages",
        "prompt",
        "system",
        "custom_id",
        "metadata",
        "callback_url",
        "cache",
        "session_id",
        "stream",
    }
)
MODES: dict[str, CacheMode] = {"off": "off", "read": "read", "write": "write", "on": "on"}
READS: frozenset[CacheMode] = frozenset({"read", "on"})
WRITES: frozenset[CacheMode] = frozenset({"write", "on"})
RESPONSE_CACHE = Counter(
    "switchyard_response_cache_total",
    "Response-cache lookups and writes by side (api, worker) and outcome",
    ["side", "outcome"],
)
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def request_digest(request: JobRequest) -> str:
    """The sha256 of the canonical request: what decides the answer, nothing else."""
    params = request.model_dump(mode="json", exclude_none=True, exclude=set(NOT_IN_KEY))
    messages = [m.model_dump(mode="json", exclude_none=True) for m in request.canonical_messages()]
    blob = json.dumps({"messages": messages, **params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def effective_mode(request: JobRequest, tenant_default: str | None = None) -> CacheMode:
    """How this request uses the cache (see the module docstring for the order)."""
    if request.session_id is not None or request.steps:
        return "off"  # a session's real prompt is the conversation; a pipeline has steps
    if request.cache is not None:
        return request.cache
    if tenant_default is not None and tenant_default in MODES:
        return MODES[tenant_default]
    return "on" if request.temperature == 0 else "off"


def header_mode(cache_control: str | None) -> CacheMode | None:
    """``Cache-Control`` on a request: ``no-store`` is ``off``, ``no-cache`` is ``write``."""
    directives = {d.strip().lower() for d in (cache_control or "").split(",")}
    if "no-store" in directives:
        return "off"
    if "no-cache" in directives:
        return "write"
    return None


@dataclass(frozen=True)
class CachedAnswer:
    """An answer as cached: its text and tool calls, and where it was made."""

    text: str
    finish_reason: str
    tier: str
    deployment: str
    provider: str
    model: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, completion: Completion, *, tier: str, deployment: Any) -> CachedAnswer:
        """From a provider's completion on ``deployment`` (a catalog ``Deployment``)."""
        return cls(
            text=completion.text,
            finish_reason=completion.finish_reason,
            tier=tier,
            deployment=deployment.name,
            provider=deployment.provider,
            model=deployment.model,
            tool_calls=[t.model_dump(mode="json") for t in completion.tool_calls],
        )

    def completion(self) -> Completion:
        """The answer again, with zero usage: a hit bills nothing."""
        return Completion(
            text=self.text,
            finish_reason=self.finish_reason,
            usage=Usage(),
            provider_model=self.model,
            tool_calls=[ToolCall.model_validate(t) for t in self.tool_calls],
        )

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> CachedAnswer | None:
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
            return None


class ResponseCache:
    """Answers by (tenant, digest) in Redis, plus the single-flight lock for a digest.

    Redis errors are logged and treated as a miss (or a lock not taken): the cache
    must never fail a job.
    """

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int, wait_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self._unlock = client.register_script(_UNLOCK)

    def key(self, tenant_id: str, digest: str) -> str:
        return f"{self.prefix}switchyard:rcache:{tenant_id}:{digest}"

    def lock_key(self, tenant_id: str, digest: str) -> str:
        return f"{self.prefix}switchyard:rcache-lock:{tenant_id}:{digest}"

    def get(self, tenant_id: str, digest: str) -> CachedAnswer | None:
        try:
            raw = self.client.get(self.key(tenant_id, digest))
        except redis.RedisError as exc:
            log.warning("response cache unavailable: %s", type(exc).__name__)
            return None
        return CachedAnswer.loads(raw) if isinstance(raw, bytes | str) else None

    def put(self, tenant_id: str, digest: str, answer: CachedAnswer) -> None:
        try:
            self.client.set(self.key(tenant_id, digest), answer.dumps(), ex=self.ttl_s)
        except redis.RedisError as exc:
            log.warning("response cache not written: %s", type(exc).__name__)

    def lock(self, tenant_id: str, digest: str, owner: str) -> bool:
        """Take the single-flight lock for ``digest`` (True), or see it held elsewhere."""
        try:
            key, wait_ms = self.lock_key(tenant_id, digest), int(self.wait_s * 1000)
            return bool(self.client.set(key, owner, nx=True, px=wait_ms))
        except redis.RedisError:
            return True  # no coordination without Redis: call the provider

    def holder(self, tenant_id: str, digest: str) -> str | None:
        try:
            raw = self.client.get(self.lock_key(tenant_id, digest))
        except redis.RedisError:
            return None
        return raw.decode() if isinstance(raw, bytes) else None

    def unlock(self, tenant_id: str, digest: str, owner: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self._unlock(keys=[self.lock_key(tenant_id, digest)], args=[owner])


def with_cache_header(request: JobRequest, cache_control: str | None) -> JobRequest:
    """The request with the mode its ``Cache-Control`` header asks for, if any."""
    mode = header_mode(cache_control)
    return request if mode is None else request.model_copy(update={"cache": mode})
