"""The orchestrator's error tree.

SwitchyardError
├── ConfigError          bad settings or catalog
├── ValidationFailed     a request the API must refuse with a 4xx (names the field)
├── NotFound             unknown id, or another tenant's (always 404, never 403)
├── Conflict             the object exists but is in a state that refuses the action (409)
├── Unauthorized         missing or unknown API key
└── NoRoute              no deployment in the catalog can serve the request
"""

from __future__ import annotations


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
