"""`OpenAICompatibleProvider`: any endpoint speaking OpenAI Chat Completions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from reliable_llm._capabilities import TEXT_ONLY, ModelCapabilities
from reliable_llm.providers._base import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
from reliable_llm.providers._openai import OpenAIProvider
from reliable_llm.providers._secret import SecretStr

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(OpenAIProvider):
    """A model behind any OpenAI-compatible Chat Completions endpoint (Groq, vLLM, Ollama, ...).

    Prefer `reliable_llm.providers.preset` for the services it knows; use this class for
    anything else.

    Args:
        model: The model id the endpoint expects.
        base_url: The endpoint's API root, e.g. ``http://localhost:8000/v1``.
        api_key: The key; default: the ``api_key_env`` environment variable.
        api_key_env: The environment variable holding the key, if any.
        requires_key: Whether a missing key is an error (default: whether ``api_key_env``
            is set). Keyless endpoints get a placeholder key, never ``OPENAI_API_KEY``.
        provider_name: The name reported in responses and metrics.
        stream_usage: Whether to send ``stream_options.include_usage`` (turn off for
            endpoints that reject it).
        connect_timeout, read_timeout, default_params, default_headers, client,
        async_client: As for `OpenAIProvider`.

    Raises:
        ConfigurationError: An invalid model name or timeout. A missing required key raises
            `MissingAPIKeyError` naming ``api_key_env`` at each call.
    """

    provider_name = "openai_compatible"
    #: Text only unless declared: a preset sets its service's defaults; register_model's
    #: ``metadata={"capabilities": {...}}`` declares a model's own.
    capabilities: ModelCapabilities = TEXT_ONLY
    #: Compatible servers widely accept ``max_tokens``; fewer know OpenAI's newer name.
    max_tokens_param: ClassVar[str] = "max_tokens"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | SecretStr | None = None,
        api_key_env: str | None = None,
        requires_key: bool | None = None,
        provider_name: str | None = None,
        stream_usage: bool = True,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        default_params: Mapping[str, Any] | None = None,
        default_headers: Mapping[str, str] | None = None,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        super().__init__(
            model,
            api_key=api_key,
            base_url=base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            default_params=default_params,
            default_headers=default_headers,
            client=client,
            async_client=async_client,
        )
        self.api_key_env = api_key_env
        self.requires_key = api_key_env is not None if requires_key is None else requires_key
        self.stream_usage = stream_usage
        if provider_name:
            self.provider_name = provider_name
