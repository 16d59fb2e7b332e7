"""`AnthropicProvider`: the Anthropic Messages API through the official ``anthropic`` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType
from typing import Any, ClassVar

from reliable_llm._capabilities import ModelCapabilities
from reliable_llm._errors import ConfigurationError
from reliable_llm._types import ChatRequest, ChatResponse, StreamChunk
from reliable_llm.providers import _anthropic_wire as wire
from reliable_llm.providers._base import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    SDKProvider,
)
from reliable_llm.providers._capability_defaults import ANTHROPIC
from reliable_llm.providers._secret import SecretStr
from reliable_llm.providers._signature import fit_to_signature

__all__ = ["AnthropicProvider"]


class AnthropicProvider(SDKProvider):
    """A Claude model served by the Anthropic Messages API.

    Sync, async and streaming calls are native SDK calls (``anthropic.Anthropic`` and
    ``anthropic.AsyncAnthropic``) with the SDK's retries off. Streams are read as raw
    events; an ``error`` event inside a 200 stream (e.g. ``overloaded_error``) and a stream
    that ends without ``message_stop`` raise retryable errors, never a truncated answer.

    ``response_format`` is emulated with a forced tool (Anthropic has no JSON mode): the
    answer text is the JSON object. Combined with other tools it raises
    `InvalidRequestError`, which makes the manager fall back to the next model.

    Args:
        model: The model id, e.g. ``"claude-sonnet-4-5"``.
        api_key: Default: the ``ANTHROPIC_API_KEY`` environment variable, read at first use.
        base_url: Another endpoint speaking the Messages protocol.
        max_tokens: Output limit used when a request sets none (Anthropic requires one).
        connect_timeout, read_timeout, default_params, default_headers: As for
            `OpenAIProvider`.
        client: A ready ``anthropic.Anthropic`` (copied with ``max_retries=0``).
        async_client: A ready ``anthropic.AsyncAnthropic`` (copied with ``max_retries=0``).

    Raises:
        ConfigurationError: An invalid model, ``max_tokens`` or timeout. A missing SDK raises
            `ProviderConfigurationError` from `warm` or the first call; a missing key
            raises `MissingAPIKeyError` at each call.
    """

    provider_name = "anthropic"
    #: Images, PDFs and plain-text documents, signed thinking replayed, cache_control.
    capabilities: ModelCapabilities = ANTHROPIC
    sdk_module: ClassVar[str] = "anthropic"
    sdk_extra: ClassVar[str] = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        max_tokens: int = 1024,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        default_params: Mapping[str, Any] | None = None,
        default_headers: Mapping[str, str] | None = None,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be a positive int, got {max_tokens!r}")
        super().__init__(
            model,
            api_key=api_key,
            api_key_env="ANTHROPIC_API_KEY",
            requires_key=True,
            base_url=base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            default_params=default_params,
            default_headers=default_headers,
            client=client,
            async_client=async_client,
        )
        self.max_tokens = max_tokens

    def _make_client(self, sdk: ModuleType, *, asynchronous: bool) -> Any:
        cls = sdk.AsyncAnthropic if asynchronous else sdk.Anthropic
        return cls(
            api_key=self._api_key(),
            base_url=self.base_url,
            timeout=self._client_timeout(sdk),
            max_retries=0,
            default_headers=self.default_headers or None,
            http_client=self._async_http_client(sdk) if asynchronous else None,
        )

    def _params(self, request: ChatRequest, timeout: float | None) -> tuple[dict[str, Any], Any]:
        params, json_tool = wire.build_params(
            request, self.model, max_tokens=self.max_tokens, default_params=self.default_params
        )
        params["timeout"] = self._call_timeout(timeout)
        return params, json_tool

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Answer ``request`` with one blocking Messages call.

        Raises:
            ProviderError: The call failed (translated from the SDK error).
        """
        try:
            params, json_tool = self._params(request, timeout)
            create = self.sync_client().messages.create
            message = create(**fit_to_signature(create, params))
            return wire.parse_message(message, self.provider_name, json_tool)
        except Exception as exc:
            error = self._translate(exc)
            if error is None or error is exc:
                raise
            raise error from exc

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Answer ``request`` with one asynchronous Messages call.

        Raises:
            ProviderError: The call failed (translated from the SDK error).
        """
        try:
            params, json_tool = self._params(request, timeout)
            create = self.async_client().messages.create
            message = await create(**fit_to_signature(create, params))
            return wire.parse_message(message, self.provider_name, json_tool)
        except Exception as exc:
            error = self._translate(exc)
            if error is None or error is exc:
                raise
            raise error from exc

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        """Stream the answer; the last chunk carries the finish reason and usage.

        Raises:
            ProviderError: The call failed, the stream broke, or it ended unfinished.
        """
        params, json_tool = self._params(request, timeout)

        def open_stream() -> Any:
            create = self.sync_client().messages.create
            return create(**fit_to_signature(create, {**params, "stream": True}))

        return self._pump(open_stream, wire.StreamState(json_tool, self.provider_name))

    def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`.

        Raises:
            ProviderError: The call failed, the stream broke, or it ended unfinished.
        """
        params, json_tool = self._params(request, timeout)

        async def open_stream() -> Any:
            create = self.async_client().messages.create
            return await create(**fit_to_signature(create, {**params, "stream": True}))

        return self._apump(open_stream, wire.StreamState(json_tool, self.provider_name))

    def describe(self) -> dict[str, object]:
        """Public facts about this provider; never the key."""
        return {**super().describe(), "max_tokens": self.max_tokens}
