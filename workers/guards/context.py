"""Context windows: a prompt one deployment found too long goes to a larger window."""

from __future__ import annotations

from workers.guards.base import Call, Guard, SkipDeployment
from workers.providers.errors import ContextLengthExceeded, ProviderError


class ContextWindowGuard(Guard):
    """After a context-length error, skip every deployment whose window is no larger."""

    def before_call(self, call: Call) -> None:
        needed = call.progress.min_window
        if needed and call.deployment.context_window <= needed:
            raise SkipDeployment(
                f"{call.name}: context window {call.deployment.context_window} is too small"
                f" (a {needed}-token window already refused this prompt)"
            )

    def after_failure(self, call: Call, error: ProviderError) -> None:
        if isinstance(error, ContextLengthExceeded):
            progress = call.progress
            progress.min_window = max(progress.min_window, call.deployment.context_window)
            raise SkipDeployment(str(error))
