"""Which path a job takes: a synchronous call, or its provider's batch API (issue 26).

    choose_path(request, plan, settings)
      the job did not ask (no completion_window, objective not cost) -> no step: sync
      the batch path is off (SWITCHYARD_PROVIDER_BATCH_ENABLED)      -> sync
      streamed, a pipeline, a session turn (someone needs it now)     -> sync
      objective cost with a deadline nearer than provider_batch_min_wait_s -> sync
      the first deployment of the plan offers no batch API            -> sync
      otherwise                                                       -> provider_batch

A job that asked gets a ``path`` routing step saying which path it took and why;
``GET /v1/jobs/{id}`` shows it. A job going by provider batch may take its whole
window (its deadline), and runs synchronously if it is still waiting
``provider_batch_sync_margin_s`` before then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.core.catalog import Deployment
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest

WINDOW_S = {"24h": 86_400}
PROVIDER_BATCH = "provider_batch"
SYNC = "sync"


@dataclass(frozen=True)
class PathChoice:
    """The path a job takes, how long it may take (seconds), and the reasons to show."""

    choice: str | None  # None: the job did not ask, nothing to show
    deadline_s: int
    reasons: tuple[str, ...] = ()

    @property
    def provider_batch(self) -> bool:
        return self.choice == PROVIDER_BATCH

    def steps(self) -> list[dict[str, Any]]:
        """The routing step to store with the job (none for a job that did not ask)."""
        if self.choice is None:
            return []
        return [{"step": "path", "choice": self.choice, "scorer": "rules",
                 "reasons": list(self.reasons)}]  # fmt: skip


def choose_path(request: JobRequest, plan: Sequence[Deployment], settings: Settings) -> PathChoice:
    """The path for ``request`` routed to ``plan`` (its first deployment decides)."""
    sync_s = settings.job_deadline_s
    window = request.completion_window
    if window is None and request.objective != "cost":
        return PathChoice(None, sync_s)
    asked = f"completion_window {window}" if window else "objective cost"
    wait_s = WINDOW_S[window] if window else sync_s
    refusal = _refusal(request, plan, settings, wait_s)
    if refusal is not None:
        return PathChoice(SYNC, sync_s, (asked, refusal))
    first = plan[0]
    why = f"{first.name} offers a batch API at about half price"
    return PathChoice(PROVIDER_BATCH, max(wait_s, sync_s), (asked, why))


def _refusal(
    request: JobRequest, plan: Sequence[Deployment], settings: Settings, wait_s: int
) -> str | None:
    """Why the job cannot go by provider batch, or None."""
    if not settings.provider_batch_enabled:
        return "the provider batch path is off (SWITCHYARD_PROVIDER_BATCH_ENABLED)"
    if request.stream:
        return "a streamed job is answered now"
    if request.steps:
        return "a pipeline's steps run one after another"
    if request.session_id is not None:
        return "a session's turn is answered now"
    least = settings.provider_batch_min_wait_s
    if wait_s < least:
        return f"its deadline in {wait_s}s is nearer than provider_batch_min_wait_s={least}"
    if not plan or plan[0].batch is None:
        name = plan[0].name if plan else "no deployment"
        return f"{name} offers no batch API"
    return None
