"""What can go wrong when calling a provider, as one error tree.

    ProviderError                     provider, model, status, message, retry_after_s;
    │                                 the class attribute ``retryable``
    ├── RateLimited          retry    429; ``retry_after_s`` from the provider's headers or body
    ├── Overloaded           retry    503, 529 (and 409, which OpenAI uses for lock timeouts)
    ├── ServerError          retry    other 5xx, or a 2xx whose body is not a completion
    ├── ProviderTimeout      retry    no answer in time (client timeout, HTTP 408 or 504)
    ├── ConnectionFailed     retry    could not connect, or the connection broke
    ├── Unresolved           retry    a lost provider batch create cannot be told apart yet
    ├── BadRequest           final    400, 404, 422, other 4xx, or a request that cannot be sent
    │   ├── ContextLengthExceeded     prompt + max_tokens do not fit the context window
    │   └── ContentPolicy             refused by the provider's content filter
    ├── AuthenticationFailed final    401, 403 (and Gemini's 400 "API key not valid")
    └── QuotaExhausted       final    429 ``insufficient_quota``, 402, ``billing_error``

``retryable`` says whether the same call may succeed later on the same deployment;
a final error may still succeed on another deployment (a larger context window,
another provider), which is the caller's decision. Messages are scrubbed of the
API key, because some providers echo it back in their error text.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from workers.providers.retry_after import body_retry_delay_s, retry_after_s

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


class Unresolved(ProviderError):
    """A provider batch whose create reply was lost cannot yet be told from others
    (Anthropic's batches carry no tag); asking again later, once they end, can."""

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


_CONTEXT_TEXT = re.compile(
    r"context[ _-]?(length|window)|maximum context|prompt is too long|too many tokens"
    r"|maximum number of tokens",
    re.I,
)
_BAD_KEY_TEXT = re.compile(r"api[ _]key not valid|API_KEY_INVALID", re.I)
_CONTENT_CODES = {"content_filter", "content_policy_violation"}
_QUOTA_KINDS = {"insufficient_quota", "billing_error"}


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` masked."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[REDACTED]")
    return text


class _Fields:
    """What an error body says, whichever provider's shape it has."""

    def __init__(self, message: str, code: str = "", kind: str = "", delay_s: float | None = None):
        self.message, self.code, self.kind, self.delay_s = message, code, kind, delay_s


def _error_fields(response: httpx.Response) -> _Fields:
    """Message, code, type and retry delay from an OpenAI, Anthropic or Gemini error body.

    OpenAI: ``{"error": {message, type, code}}``; Anthropic: ``{"type": "error",
    "error": {type, message}}``; Gemini: ``{"error": {code (int), message, status,
    details}}``.
    """
    try:
        body: Any = response.json()
    except ValueError:
        return _Fields(response.text.strip() or response.reason_phrase)
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, list) and error and isinstance(error[0], dict):
        error = error[0].get("error", error[0])  # some Gemini proxies wrap errors in a list
    if not isinstance(error, dict):
        return _Fields(str(error))
    message = error.get("message") or error.get("detail") or str(error)
    code = error.get("code")
    kind = error.get("type") or error.get("status")
    return _Fields(
        str(message),
        str(code) if isinstance(code, str) else "",
        str(kind or ""),
        body_retry_delay_s(error),
    )


def _classify(status: int, fields: _Fields) -> type[ProviderError]:
    code, kind, message = fields.code, fields.kind, fields.message
    if status == 402 or code in _QUOTA_KINDS or kind in _QUOTA_KINDS:
        return QuotaExhausted
    if status == 429:
        return RateLimited
    if status in (409, 503, 529) or kind == "overloaded_error":
        return Overloaded
    if status == 504 or kind == "DEADLINE_EXCEEDED" or status == 408:
        return ProviderTimeout
    if status >= 500:
        return ServerError
    if status in (401, 403) or _BAD_KEY_TEXT.search(message):
        return AuthenticationFailed
    if code == "context_length_exceeded" or _CONTEXT_TEXT.search(message):
        return ContextLengthExceeded
    if code in _CONTENT_CODES or kind in _CONTENT_CODES:
        return ContentPolicy
    return BadRequest


def error_from_response(
    response: httpx.Response, *, provider: str, model: str, api_key: str | None
) -> ProviderError:
    """The error tree's answer to a non-2xx HTTP response, in any provider's shape."""
    fields = _error_fields(response)
    cls = _classify(response.status_code, fields)
    wait_s = None
    if cls in (RateLimited, Overloaded):
        wait_s = retry_after_s(response.headers)
        wait_s = fields.delay_s if wait_s is None else wait_s
    return cls(
        scrub(fields.message, api_key)[:MAX_MESSAGE_CHARS],
        provider=provider,
        model=model,
        status=response.status_code,
        retry_after_s=wait_s,
    )


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
