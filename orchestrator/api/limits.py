"""Admission limits: request body size (413) and each tenant's request rate (429).

``BodyLimit`` is ASGI middleware: a declared ``Content-Length`` over the limit is
refused before a byte is read; a streamed body is counted and cut off when it
passes the limit. Uploads to ``/v1/files`` have their own, larger limit.

``TenantRateLimiter`` paces each tenant's API requests with GCRA in Redis
(smooth, with a burst allowance; a per-minute counter would let a whole
minute's budget through at once). If Redis cannot be reached it lets the
request through: the API stays up and the workers' provider limits still hold.
"""

from __future__ import annotations

import json
import logging

import redis
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.core.errors import RateLimited, TooLarge

log = logging.getLogger(__name__)
UPLOAD_PATHS = ("/v1/files",)

_GCRA = """
local function gcra(key, interval, tolerance)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local allow_at = tat + interval - tolerance
  if allow_at > now then return tostring(allow_at - now) end
  redis.call('SET', key, tostring(tat + interval), 'PX', math.ceil(tat + interval - now) + 1000)
  return '0'
end
"""
GCRA = _GCRA + "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))"
# The rate limit and one more key's value in a single round trip (a response-cache
# hit needs both): {wait_ms} if refused, else {'0', value or false}.
GCRA_THEN_GET = (
    _GCRA
    + """
local wait = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait ~= '0' then return {wait} end
return {wait, redis.call('GET', KEYS[2])}
"""
)


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (``max_upload_bytes`` for file uploads)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if scope["path"] in UPLOAD_PATHS else self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge("body", f"request body over {limit} bytes")
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    error = {
        "type": "request_too_large",
        "message": f"request body over the limit of {limit} bytes",
        "field": "body",
        "param": "body",
        "code": "request_too_large",
    }
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TenantRateLimiter:
    """GCRA per tenant in Redis: ``rpm`` requests a minute, bursts of ``burst``.

    Checked on the event loop with the async client (no thread hop per request).
    """

    def __init__(
        self, client: aioredis.Redis, *, prefix: str, default_rpm: int, burst: int
    ) -> None:
        self.prefix = prefix
        self.default_rpm = default_rpm
        self.burst = burst
        self._check = client.register_script(GCRA)
        self._check_then_get = client.register_script(GCRA_THEN_GET)
        self._client = client

    def _args(self, tenant_id: str, limit: int, rpm: int | None) -> tuple[str, list[float]]:
        interval_ms = 60_000 / limit
        tolerance_ms = interval_ms * max(1, self.burst if rpm is None else min(self.burst, limit))
        return f"{self.prefix}switchyard:tenant-rate:{tenant_id}", [interval_ms, tolerance_ms]

    def _limit(self, rpm: int | None) -> int:
        return self.default_rpm if rpm is None else rpm

    async def acheck(self, tenant_id: str, rpm: int | None = None) -> None:
        """Raise ``RateLimited`` if the tenant has no request left right now.

        If Redis cannot be reached it lets the request through.
        """
        limit = self._limit(rpm)
        if limit <= 0:
            return
        key, args = self._args(tenant_id, limit, rpm)
        try:
            wait_ms = float(await self._check(keys=[key], args=args))
        except redis.RedisError as exc:
            log.warning("tenant rate limit not checked (%s); letting the request through", exc)
            return
        _refuse_over(limit, wait_ms)

    async def acheck_then_get(self, tenant_id: str, rpm: int | None, key: str) -> bytes | None:
        """``acheck``, then the value at ``key``, in one round trip (None if absent).

        If Redis cannot be reached the request goes through, as with ``acheck``,
        and the value is None.
        """
        limit = self._limit(rpm)
        if limit <= 0:
            try:
                value = await self._client.get(key)
            except redis.RedisError:
                return None
            return value if isinstance(value, bytes) else None
        rate_key, args = self._args(tenant_id, limit, rpm)
        try:
            reply = await self._check_then_get(keys=[rate_key, key], args=args)
        except redis.RedisError as exc:
            log.warning("tenant rate limit not checked (%s); letting the request through", exc)
            return None
        _refuse_over(limit, float(reply[0]))
        value = reply[1] if len(reply) > 1 else None
        return value if isinstance(value, bytes) else None


def _refuse_over(limit: int, wait_ms: float) -> None:
    if wait_ms > 0:
        raise RateLimited(
            f"rate limit of {limit} requests a minute exceeded; retry in {wait_ms / 1000:.1f}s",
            retry_after_s=wait_ms / 1000,
        )
