"""The orchestrator's error tree.

SwitchyardError
├── ConfigError          bad settings or catalog
├── ValidationFailed     a request the API must refuse with a 4xx (names the field)
│   └── TooLarge         a body or file over its size limit (413)
├── NotFound             unknown id, or another tenant's (always 404, never 403)
├── Conflict             the object exists but is in a state that refuses the action (409)
├── Unauthorized         missing or unknown API key (401)
├── Forbidden            the admin API without the admin key configured (403)
├── RateLimited          the tenant is over its request rate (429, with retry_after_s)
├── BudgetExceeded       the tenant's daily or monthly budget would be passed (402)
├── JobUnfinished        a job waited on did not succeed (failed 502, expired 504, cancelled 409)
├── ApiError             any other error answer, as the SDK sees it (status kept)
└── NoRoute              no deployment in the catalog can serve the request

The API turns each into one error shape (``orchestrator.api.app``); the SDK
(``orchestrator.client.sdk``) turns that shape back into the same class.
"""

from __future__ import annotations

from typing import ClassVar


class SwitchyardError(Exception):
    """Root of every error the orchestrator raises on purpose."""


class ConfigError(SwitchyardError):
    """Settings or the model catalog are invalid."""


class ValidationFailed(SwitchyardError):
    """Input that must be refused; ``field`` names where the problem is."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(SwitchyardError):
    """The object does not exist for this tenant."""


class Conflict(SwitchyardError):
    """The action does not apply to the object's current state (e.g. cancel a finished job)."""


class Unauthorized(SwitchyardError):
    """The request carries no valid API key."""


class NoRoute(SwitchyardError):
    """No deployment can serve this request (tier, capability or context window)."""


class TooLarge(ValidationFailed):
    """A request body, upload or batch over its limit."""


class Forbidden(SwitchyardError):
    """The action is not available to this caller (the admin API is off)."""


class RateLimited(SwitchyardError):
    """Too many requests; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BudgetExceeded(SwitchyardError):
    """Admitting the request could pass the tenant's ``period`` budget (HTTP 402)."""

    def __init__(self, period: str, message: str) -> None:
        super().__init__(message)
        self.period = period


class JobUnfinished(SwitchyardError):
    """A job that a caller waited on ended without an answer, or is still running."""

    STATUS: ClassVar[dict[str, int]] = {"failed": 502, "expired": 504, "cancelled": 409}

    def __init__(self, job_id: str, status: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status

    @property
    def http_status(self) -> int:
        return self.STATUS.get(self.status, 504)


class ApiError(SwitchyardError):
    """An error answer from the API that maps to no narrower class (the SDK raises it)."""

    def __init__(self, status_code: int, kind: str, message: str) -> None:
        super().__init__(f"{status_code} {kind}: {message}")
        self.status_code = status_code
        self.kind = kind
