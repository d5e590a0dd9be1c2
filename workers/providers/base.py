"""The one interface every provider adapter implements.

An adapter turns a canonical ``JobRequest`` into one HTTP call to one deployment
and the answer back into a canonical ``Completion``; anything that goes wrong is
raised as a ``workers.providers.errors.ProviderError``. Adapters hold no state
between calls beyond their injected ``httpx.Client``, so one per call is cheap.
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.catalog import Deployment
from orchestrator.schemas import Completion, JobRequest


class Provider(Protocol):
    """What the attempt loop needs from a provider, whatever its wire format."""

    def complete(self, deployment: Deployment, request: JobRequest) -> Completion:
        """One completion from ``deployment``; raises ``ProviderError`` on failure."""
        ...
