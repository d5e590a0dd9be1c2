"""Provider adapters: one per wire format, chosen by ``Deployment.api``.

Formats: ``openai`` (chat completions, any compatible server), ``azure``
(Azure OpenAI deployment URLs), ``anthropic`` (Messages) and ``gemini``
(``generateContent``). ``adapter_for`` looks the format up in ``ADAPTERS`` and
hands the adapter the
process's pooled ``httpx.Client`` and the deployment's API key (from
``Settings.provider_key(api_key_ref)``: env, keys file or keys directory; none
for the simulator).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError
from workers.providers.anthropic import AnthropicMessagesAdapter
from workers.providers.base import Provider
from workers.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContentPolicy,
    ContextLengthExceeded,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    ServerError,
    error_from_response,
    error_from_transport,
)
from workers.providers.gemini import GeminiAdapter
from workers.providers.openai import AzureOpenAIAdapter, OpenAIChatAdapter
from workers.providers.retry_after import retry_after_s

AdapterFactory = Callable[[httpx.Client, str | None], Provider]

ADAPTERS: dict[str, AdapterFactory] = {
    "openai": OpenAIChatAdapter,
    "azure": AzureOpenAIAdapter,
    "anthropic": AnthropicMessagesAdapter,
    "gemini": GeminiAdapter,
}


def adapter_for(deployment: Deployment, client: httpx.Client, settings: Settings) -> Provider:
    """The adapter for ``deployment``'s wire format, holding its API key."""
    factory = ADAPTERS.get(deployment.api)
    if factory is None:
        raise ConfigError(f"deployment {deployment.name}: no adapter for api {deployment.api!r}")
    api_key = None
    if deployment.api_key_ref:
        api_key = settings.provider_key(deployment.api_key_ref)
    return factory(client, api_key)


__all__ = [
    "ADAPTERS",
    "AdapterFactory",
    "AnthropicMessagesAdapter",
    "AuthenticationFailed",
    "AzureOpenAIAdapter",
    "BadRequest",
    "ConnectionFailed",
    "ContentPolicy",
    "ContextLengthExceeded",
    "GeminiAdapter",
    "OpenAIChatAdapter",
    "Overloaded",
    "Provider",
    "ProviderError",
    "ProviderTimeout",
    "QuotaExhausted",
    "RateLimited",
    "ServerError",
    "adapter_for",
    "error_from_response",
    "error_from_transport",
    "retry_after_s",
]
