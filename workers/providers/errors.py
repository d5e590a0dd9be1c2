"""What can go wrong when calling a provider, as one error tree.

    ProviderError                     provider, model, status, message, retry_after_s;
    │                                 the class attribute ``retryable``
    ├── RateLimited          retry    429; ``retry_after_s`` from the provider's headers
    ├── Overloaded           retry    503, 529 (and 409, which OpenAI uses for lock timeouts)
    ├── ServerError          retry    other 5xx, or a 2xx whose body is not a completion
    ├── ProviderTimeout      retry    no answer in time (client timeout, or HTTP 408)
    ├── ConnectionFailed     retry    could not connect, or the connection broke
    ├── BadRequest           final    400, 404, 422, other 4xx, or a request that cannot be sent
    │   ├── ContextLengthExceeded     prompt + max_tokens do not fit the context window
    │   └── ContentPolicy             refused by the provider's content filter
    ├── AuthenticationFailed final    401, 403
    └── QuotaExhausted       final    429 ``insufficient_quota`` or 402: billing, not pacing

``retryable`` says whether the same call may succeed later on the same deployment;
a final error may still succeed on another deployment (a larger context window,
another provider), which is the caller's decision. Messages are scrubbed of the
API key, because some providers echo it back in their error text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

MAX_MESSAGE_CHARS = 500


def _restore(cls: type[ProviderError], state: dict[str, Any]) -> ProviderError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = (str(error),)
    return error


class ProviderError(Exception):
    """Root of every failure a provider adapter raises, so callers catch one type."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.provider}/{self.model}"
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}: {self.message}{status}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive pickling (Celery, multiprocessing).
        return (_restore, (type(self), dict(self.__dict__)))


class RateLimited(ProviderError):
    """The provider is pacing us; wait ``retry_after_s`` (when it said) and retry."""

    retryable = True


class Overloaded(ProviderError):
    """The provider is up but shedding load; retry after a backoff."""

    retryable = True


class ServerError(ProviderError):
    """The provider failed, or answered with something that is not a completion."""

    retryable = True


class ProviderTimeout(ProviderError):
    """No answer within the timeout; the call may or may not have been billed."""

    retryable = True


class ConnectionFailed(ProviderError):
    """The connection could not be made or broke before an answer arrived."""

    retryable = True


class BadRequest(ProviderError):
    """The provider refused the request itself; sending it again will not help."""


class ContextLengthExceeded(BadRequest):
    """The prompt does not fit this deployment's context window; try a larger one."""


class ContentPolicy(BadRequest):
    """The provider's content filter refused the prompt or the answer."""


class AuthenticationFailed(ProviderError):
    """The API key is missing, wrong or not allowed to use this model."""


class QuotaExhausted(ProviderError):
    """The account is out of credit or quota: waiting seconds will not fix it."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_CONTEXT_TEXT = re.compile(
    r"context[ _-]?(length|window)|maximum context|prompt is too long|too many tokens", re.I
)
_CONTENT_CODES = {"content_filter", "content_policy_violation"}


def parse_duration_s(text: str) -> float | None:
    """Seconds in a Go-style duration (``1s``, ``6m0s``, ``250ms``) or a bare number."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def _retry_after_header_s(value: str, now_s: float) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_s)


def retry_after_s(headers: Mapping[str, str], now_s: float | None = None) -> float | None:
    """How long the provider asked us to wait, from its headers (None: it did not say).

    ``retry-after-ms`` and ``retry-after`` (seconds or an HTTP date) win; otherwise the
    ``x-ratelimit-reset-{requests,tokens}`` of whichever limit is exhausted (both, if
    the remaining counts are not given) and the longer of the two.
    """
    now_s = time.time() if now_s is None else now_s
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        millis = parse_duration_s(lower["retry-after-ms"])
        if millis is not None:
            return millis / 1000.0
    if "retry-after" in lower:
        seconds = _retry_after_header_s(lower["retry-after"], now_s)
        if seconds is not None:
            return seconds
    resets = []
    for kind in ("requests", "tokens"):
        reset = parse_duration_s(lower.get(f"x-ratelimit-reset-{kind}", ""))
        remaining = lower.get(f"x-ratelimit-remaining-{kind}", "0").strip()
        if reset is not None and remaining == "0":
            resets.append(reset)
    return max(resets) if resets else None


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` masked."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[REDACTED]")
    return text


def _error_fields(response: httpx.Response) -> tuple[str, str, str]:
    """(message, code, type) from an error body in OpenAI, Anthropic or Gemini shape."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase, "", ""
    error = body.get("error", body) if isinstance(body, dict) else body
    if not isinstance(error, dict):
        return str(error), "", ""
    message = error.get("message") or error.get("detail") or str(error)
    code = error.get("code")
    kind = error.get("type") or error.get("status")
    return str(message), str(code) if isinstance(code, str) else "", str(kind or "")


def error_from_response(
    response: httpx.Response, *, provider: str, model: str, api_key: str | None
) -> ProviderError:
    """The error tree's answer to a non-2xx HTTP response."""
    status = response.status_code
    message, code, kind = _error_fields(response)
    message = scrub(message, api_key)[:MAX_MESSAGE_CHARS]
    where: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    if status == 402 or "insufficient_quota" in (code, kind):
        return QuotaExhausted(message, **where)
    if status == 429:
        return RateLimited(message, retry_after_s=retry_after_s(response.headers), **where)
    if status in (409, 503, 529) or kind == "overloaded_error":
        return Overloaded(message, retry_after_s=retry_after_s(response.headers), **where)
    if status >= 500:
        return ServerError(message, **where)
    if status == 408:
        return ProviderTimeout(message, **where)
    if status in (401, 403):
        return AuthenticationFailed(message, **where)
    if code == "context_length_exceeded" or _CONTEXT_TEXT.search(message):
        return ContextLengthExceeded(message, **where)
    if code in _CONTENT_CODES or kind in _CONTENT_CODES:
        return ContentPolicy(message, **where)
    return BadRequest(message, **where)


def error_from_transport(
    exc: httpx.TransportError, *, provider: str, model: str, api_key: str | None
) -> ProviderError:
    """The error tree's answer to a timeout or a connection failure."""
    detail = scrub(str(exc) or type(exc).__name__, api_key)[:MAX_MESSAGE_CHARS]
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"timed out: {detail}", provider=provider, model=model)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return BadRequest(f"cannot send: {detail}", provider=provider, model=model)
    return ConnectionFailed(f"connection failed: {detail}", provider=provider, model=model)
