"""Batch adapters by wire format, as ``workers.providers.ADAPTERS`` is for single calls.

``batch_adapter_for(deployment, client, settings)`` gives the deployment's batch
adapter (``workers.providers.batch_base.BatchAdapter``) with its API key, or None
when the deployment declares no ``batch`` offer or its format has no batch
adapter (Azure OpenAI's batch API is not spoken yet).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.config import Settings
from workers.providers.batch_anthropic import AnthropicBatchAdapter
from workers.providers.batch_base import BatchAdapter
from workers.providers.batch_gemini import GeminiBatchAdapter
from workers.providers.batch_openai import OpenAIBatchAdapter

BatchFactory = Callable[[httpx.Client, Deployment, str | None], BatchAdapter]

BATCH_ADAPTERS: dict[str, BatchFactory] = {
    "openai": OpenAIBatchAdapter,
    "anthropic": AnthropicBatchAdapter,
    "gemini": GeminiBatchAdapter,
}


def batch_adapter_for(
    deployment: Deployment | None, client: httpx.Client, settings: Settings
) -> BatchAdapter | None:
    """The deployment's batch adapter, holding its API key, or None (see the docstring)."""
    if deployment is None or deployment.batch is None:
        return None
    factory = BATCH_ADAPTERS.get(deployment.api)
    if factory is None:
        return None
    ref = deployment.api_key_ref
    return factory(client, deployment, settings.provider_key(ref) if ref else None)
