"""How long a provider asked us to wait, read from its headers or its error body.

Each provider says it differently:

- everyone: ``retry-after`` (seconds or an HTTP date); OpenAI also ``retry-after-ms``;
- OpenAI: ``x-ratelimit-reset-{requests,tokens}`` as Go-style durations (``6m0s``);
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset``
  as RFC 3339 times;
- Gemini: a ``google.rpc.RetryInfo`` detail in the error body, ``"retryDelay": "30s"``.

A reset counts only for a limit whose remaining count is 0 (or not given).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_ANTHROPIC_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


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


def _http_date_or_seconds(value: str, now_s: float) -> float | None:
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


def _rfc3339_in_s(value: str, now_s: float) -> float | None:
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_s)


def _exhausted_resets(lower: Mapping[str, str], now_s: float) -> list[float]:
    resets: list[float] = []
    for kind in ("requests", "tokens"):
        reset = parse_duration_s(lower.get(f"x-ratelimit-reset-{kind}", ""))
        remaining = lower.get(f"x-ratelimit-remaining-{kind}", "0").strip()
        if reset is not None and remaining == "0":
            resets.append(reset)
    for kind in _ANTHROPIC_LIMITS:
        value = lower.get(f"anthropic-ratelimit-{kind}-reset")
        remaining = lower.get(f"anthropic-ratelimit-{kind}-remaining", "0").strip()
        when = _rfc3339_in_s(value, now_s) if value else None
        if when is not None and remaining == "0":
            resets.append(when)
    return resets


def retry_after_s(headers: Mapping[str, str], now_s: float | None = None) -> float | None:
    """How long the provider asked us to wait, from its headers (None: it did not say).

    ``retry-after-ms`` and ``retry-after`` (seconds or an HTTP date) win; otherwise the
    reset time of whichever limit is exhausted (all of them, if the remaining counts
    are not given), and the longest of those.
    """
    now_s = time.time() if now_s is None else now_s
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        millis = parse_duration_s(lower["retry-after-ms"])
        if millis is not None:
            return millis / 1000.0
    if "retry-after" in lower:
        seconds = _http_date_or_seconds(lower["retry-after"], now_s)
        if seconds is not None:
            return seconds
    resets = _exhausted_resets(lower, now_s)
    return max(resets) if resets else None


def body_retry_delay_s(error: Mapping[str, Any]) -> float | None:
    """Gemini's ``RetryInfo.retryDelay`` from an error object's ``details`` (None: absent)."""
    details = error.get("details")
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO_TYPE:
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration_s(delay)
    return None
