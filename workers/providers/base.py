"""The one interface every provider adapter implements.

An adapter turns a canonical ``JobRequest`` into one HTTP call to one deployment
and the answer back into a canonical ``Completion``; anything that goes wrong is
raised as a ``workers.providers.errors.ProviderError``. Adapters hold no state
between calls beyond their injected ``httpx.Client``, so one per call is cheap.
``stream`` is the same call with the provider's streaming on (for chat
completions asked with ``stream: true``); ``workers.providers.sse`` holds the
shared streaming transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest


class Provider(Protocol):
    """What the attempt loop needs from a provider, whatever its wire format."""

    def complete(self, deployment: Deployment, request: JobRequest) -> Completion:
        """One completion from ``deployment``; raises ``ProviderError`` on failure."""
        ...

    def stream(
        self, deployment: Deployment, request: JobRequest, on_delta: Callable[[str], None]
    ) -> Completion:
        """The same completion, streamed: each piece of text goes to ``on_delta`` as it
        arrives; returns the whole ``Completion`` at the end, like ``complete``."""
        ...
