"""Adapter for the OpenAI chat-completions wire format.

Speaks to anything OpenAI-compatible at ``{base_url}/chat/completions``: OpenAI
itself, compatible gateways and servers (vLLM, Mistral, Groq, ...) and
Switchyard's own simulator. The adapter is a thin translation: canonical request
to wire body, wire answer to ``Completion``, failures to the error tree in
``workers.providers.errors``.
"""

from __future__ import annotations

from typing import Any

import httpx

from orchestrator.catalog import Deployment
from orchestrator.schemas import Completion, JobRequest, Usage
from orchestrator.tokens import estimate_request_tokens, estimate_tokens
from workers.providers.errors import ServerError, error_from_response, error_from_transport

SIMULATOR_API_KEY = "sk-simulator"


def build_body(deployment: Deployment, request: JobRequest) -> dict[str, Any]:
    """The chat-completions JSON body for ``request`` sent to ``deployment``.

    ``max_tokens`` is capped at the deployment's ``max_output_tokens``: asking for
    more only earns a 400 from the provider.
    """
    body: dict[str, Any] = {
        "model": deployment.model,
        "messages": [m.model_dump(mode="json") for m in request.canonical_messages()],
        "max_tokens": min(request.max_tokens, deployment.max_output_tokens),
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = request.stop
    return body


def _text(content: object) -> str | None:
    """The answer text from ``message.content``: a string, null, or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(t for t in texts if isinstance(t, str))
    return None


def _count(usage: object, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Malformed(Exception):
    """A 2xx answer that is not a chat completion (reason in the message)."""


def parse_completion(data: Any, request: JobRequest) -> Completion:
    """A ``Completion`` from a decoded chat-completions answer, or ``_Malformed``.

    Usage missing from the answer (some compatible servers omit it) is estimated,
    so every billed call still has token counts for the ledger.
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _Malformed("no message")
    text = _text(message.get("content"))
    if text is None:
        raise _Malformed("content is not text")
    refusal = message.get("refusal")
    finish = choices[0].get("finish_reason")
    if not text and isinstance(refusal, str):
        text = refusal  # a model's refusal is a billed answer, not an error
    usage = data.get("usage")
    input_tokens = _count(usage, "prompt_tokens")
    output_tokens = _count(usage, "completion_tokens")
    if input_tokens is None:
        input_tokens = estimate_request_tokens(request.canonical_messages())
    if output_tokens is None:
        output_tokens = estimate_tokens(text)
    model = data.get("model")
    return Completion(
        text=text,
        finish_reason=finish if isinstance(finish, str) and finish else "stop",
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        provider_model=model if isinstance(model, str) else None,
    )


class OpenAIChatAdapter:
    """Calls one OpenAI-compatible deployment per ``complete`` over an injected client."""

    def __init__(self, client: httpx.Client, api_key: str | None) -> None:
        self._client = client
        self._api_key = api_key

    def complete(self, deployment: Deployment, request: JobRequest) -> Completion:
        """One chat completion; raises a ``ProviderError`` subclass on any failure."""
        url = f"{deployment.base_url.rstrip('/')}/chat/completions"
        headers = {"Authorization": f"Bearer {self._api_key or SIMULATOR_API_KEY}"}
        provider, model = deployment.provider, deployment.model
        try:
            response = self._client.post(url, json=build_body(deployment, request), headers=headers)
        except httpx.TransportError as exc:
            raise error_from_transport(
                exc, provider=provider, model=model, api_key=self._api_key
            ) from exc
        if not response.is_success:
            raise error_from_response(
                response, provider=provider, model=model, api_key=self._api_key
            )
        try:
            return parse_completion(response.json(), request)
        except (ValueError, _Malformed) as exc:
            reason = str(exc) if isinstance(exc, _Malformed) else "not JSON"
            raise ServerError(
                f"malformed completion: {reason}",
                provider=provider,
                model=model,
                status=response.status_code,
            ) from None
