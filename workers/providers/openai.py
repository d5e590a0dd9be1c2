"""Adapter for the OpenAI chat-completions wire format, and Azure OpenAI's variant of it.

Speaks to anything OpenAI-compatible at ``{base_url}/chat/completions``: OpenAI
itself, compatible servers and gateways (vLLM, Ollama, Groq, Together,
OpenRouter, Mistral, ...) and Switchyard's simulator. Azure OpenAI serves the
same body at ``{base_url}/openai/deployments/{model}/chat/completions?api-version=V``
and takes the key in an ``api-key`` header; there ``model`` is the Azure
deployment name. The adapter is a thin translation: canonical request to wire
body, wire answer to ``Completion``, failures to ``workers.providers.errors``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, FinishReason, JobRequest, Message, ToolCall, Usage
from workers.providers.sse import DeltaSink, post_stream
from workers.providers.stream_parsers import OpenAIStreamParser
from workers.providers.transport import Malformed, build_completion, int_field, post_json

SIMULATOR_API_KEY = "sk-simulator"
# OpenAI's reasoning models refuse ``max_tokens`` and want ``max_completion_tokens``.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _wire_message(message: Message) -> dict[str, Any]:
    data = message.model_dump(mode="json", exclude_none=True)
    if isinstance(data.get("content"), list):
        for part in data["content"]:
            part.pop("cache_control", None)  # OpenAI caches prefixes on its own
    if message.role == "assistant" and "content" not in data:
        data["content"] = None
    return data


def build_body(deployment: Deployment, request: JobRequest) -> dict[str, Any]:
    """The chat-completions JSON body for ``request`` sent to ``deployment``.

    ``max_tokens`` is capped at the deployment's ``max_output_tokens``: asking for
    more only earns a 400 from the provider.
    """
    limit = min(request.max_tokens, deployment.max_output_tokens)
    body: dict[str, Any] = {
        "model": deployment.model,
        "messages": [_wire_message(m) for m in request.canonical_messages()],
    }
    limit_name = "max_completion_tokens" if _REASONING_MODEL.match(deployment.model) else None
    body[limit_name or "max_tokens"] = limit
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.tools:
        body["tools"] = [t.model_dump(mode="json", exclude_none=True) for t in request.tools]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump(mode="json")
    if request.response_format is not None:
        body["response_format"] = request.response_format.model_dump(mode="json", exclude_none=True)
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


def _tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise Malformed("tool_calls is not a list")
    return [ToolCall.model_validate({**c, "type": "function"}) for c in calls]


def parse_usage(usage: object) -> Usage:
    """Canonical usage from OpenAI's ``usage`` (cached and reasoning tokens from its details)."""
    prompt_details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    output_details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    return Usage(
        input_tokens=int_field(usage, "prompt_tokens") or 0,
        output_tokens=int_field(usage, "completion_tokens") or 0,
        cached_input_tokens=int_field(prompt_details, "cached_tokens") or 0,
        reasoning_tokens=int_field(output_details, "reasoning_tokens") or 0,
    )


def parse_completion(data: Any, request: JobRequest) -> Completion:
    """A ``Completion`` from a decoded chat-completions answer, or ``Malformed``.

    Usage missing from the answer (some compatible servers omit it) is estimated,
    so every billed call still has token counts for the ledger.
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Malformed("no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise Malformed("no message")
    text = _text(message.get("content"))
    if text is None:
        raise Malformed("content is not text")
    refusal = message.get("refusal")
    if not text and isinstance(refusal, str):
        text = refusal  # a model's refusal is a billed answer, not an error
    calls = _tool_calls(message)
    finish = _FINISH.get(str(choices[0].get("finish_reason")), "stop")
    if calls and finish == "stop":
        finish = "tool_calls"
    return build_completion(
        request,
        text=text,
        finish_reason=finish,
        usage=parse_usage(data.get("usage")),
        tool_calls=calls,
        model=data.get("model"),
    )


class OpenAIChatAdapter:
    """Calls one OpenAI-compatible deployment per ``complete`` over an injected client."""

    def __init__(self, client: httpx.Client, api_key: str | None) -> None:
        self._client = client
        self._api_key = api_key

    def _endpoint(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        key = self._api_key or SIMULATOR_API_KEY
        return f"{deployment.base_url.rstrip('/')}/chat/completions", {
            "Authorization": f"Bearer {key}"
        }

    def complete(self, deployment: Deployment, request: JobRequest) -> Completion:
        """One chat completion; raises a ``ProviderError`` subclass on any failure."""
        url, headers = self._endpoint(deployment)
        return post_json(
            self._client,
            url,
            body=build_body(deployment, request),
            headers=headers,
            deployment=deployment,
            request=request,
            api_key=self._api_key,
            parse=parse_completion,
        )

    def stream(
        self, deployment: Deployment, request: JobRequest, on_delta: DeltaSink
    ) -> Completion:
        """The same completion streamed (``stream_options.include_usage`` for the ledger)."""
        url, headers = self._endpoint(deployment)
        body = build_body(deployment, request)
        body.update(stream=True, stream_options={"include_usage": True})
        return post_stream(
            self._client,
            url,
            body=body,
            headers=headers,
            deployment=deployment,
            request=request,
            api_key=self._api_key,
            parser=OpenAIStreamParser(),
            parse=parse_completion,
            on_delta=on_delta,
        )


class AzureOpenAIAdapter(OpenAIChatAdapter):
    """OpenAI's body at Azure's deployment URL, with ``api-version`` and an ``api-key`` header."""

    def _endpoint(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        base = deployment.base_url.rstrip("/")
        url = f"{base}/openai/deployments/{deployment.model}/chat/completions"
        return f"{url}?api-version={deployment.api_version}", {
            "api-key": self._api_key or SIMULATOR_API_KEY
        }
