"""The guard interface, the signals guards raise, and the state they share per job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from workers.providers.errors import ProviderError


class GuardSignal(Exception):
    """Root of the decisions a guard can make about one planned call."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SkipDeployment(GuardSignal):
    """Do not call this deployment now; ``retry_in_s`` says when it may be worth it again."""

    def __init__(self, reason: str, retry_in_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_in_s = retry_in_s


class RetryAfter(GuardSignal):
    """Call the same deployment again after ``delay_s`` seconds (dramatiq's ``Retry``)."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = max(0.0, delay_s)


class RateLimitWait(RetryAfter):
    """The shared limiter has no slot soon enough: hand the job back instead of sleeping."""


class FailJob(GuardSignal):
    """End the job now with ``reason`` as its error (a final provider error)."""


class Answered(GuardSignal):
    """The job is answered without calling the provider (a response-cache hit)."""

    def __init__(self, completion: Completion, reason: str = "answered from the cache") -> None:
        super().__init__(reason)
        self.completion = completion


@dataclass
class Progress:
    """What earlier deliveries of a job learned, stored in ``jobs.progress`` between them."""

    tries: dict[str, int] = field(default_factory=dict)
    min_window: int = 0
    slot: dict[str, Any] | None = None  # place in a rate limit's waiting line (ratelimit.py)
    waits: int = 0
    # Output checks (workers.checks): deployments whose answer failed (-> reason), and
    # the repair calls made per deployment.
    rejected: dict[str, str] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Progress:
        data = data or {}
        return cls(
            tries={str(k): int(v) for k, v in (data.get("tries") or {}).items()},
            min_window=int(data.get("min_window") or 0),
            slot=data.get("slot"),
            waits=int(data.get("waits") or 0),
            rejected={str(k): str(v) for k, v in (data.get("rejected") or {}).items()},
            repairs={str(k): int(v) for k, v in (data.get("repairs") or {}).items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tries": dict(self.tries),
            "min_window": self.min_window,
            "slot": self.slot,
            "waits": self.waits,
            "rejected": dict(self.rejected),
            "repairs": dict(self.repairs),
        }


@dataclass
class Call:
    """One planned call to one deployment, as the guards see it."""

    job_id: str
    deployment: Deployment
    request: JobRequest
    progress: Progress
    input_tokens: int
    reserved_tokens: int = 0
    tier: str = ""
    tenant_id: str = ""

    @property
    def name(self) -> str:
        return self.deployment.name


class Guard:
    """A hook around each call; override what you need. Signals are raised, not returned."""

    def before_call(self, call: Call) -> None:
        """Before the call: raise a ``GuardSignal`` to stop it."""

    def after_success(self, call: Call, completion: Completion) -> None:
        """After a call that answered."""

    def after_accepted(self, call: Call, completion: Completion) -> None:
        """After an answer passed the output checks: it is the job's answer."""

    def after_failure(self, call: Call, error: ProviderError) -> None:
        """After a call that failed (its attempt is already counted in ``progress.tries``)."""
