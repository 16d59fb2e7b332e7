"""`OpenAIProvider`: OpenAI Chat Completions through the official ``openai`` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType
from typing import Any, ClassVar

from reliable_llm._capabilities import ModelCapabilities
from reliable_llm._types import ChatRequest, ChatResponse, StreamChunk
from reliable_llm.providers import _openai_wire as wire
from reliable_llm.providers._base import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    SDKProvider,
)
from reliable_llm.providers._capability_defaults import OPENAI, openai_capabilities
from reliable_llm.providers._secret import SecretStr
from reliable_llm.providers._signature import fit_to_signature

__all__ = ["NO_KEY", "OpenAIProvider"]

#: The key sent to endpoints that need none (local servers).
NO_KEY = "no-key-required"


class OpenAIProvider(SDKProvider):
    """A model served by the OpenAI Chat Completions API.

    Sync, async and streaming calls are native SDK calls (``openai.OpenAI`` and
    ``openai.AsyncOpenAI``), created on first use with the SDK's retries off. Streams ask for
    usage (``stream_options.include_usage``) and report it on their last chunk.

    Args:
        model: The model id, e.g. ``"gpt-4o-mini"``.
        api_key: The API key; default: the ``OPENAI_API_KEY`` environment variable, read at
            first use. Held in a `SecretStr`, never shown.
        base_url: Another endpoint speaking the same protocol.
        organization: The OpenAI organization id.
        connect_timeout: Seconds to establish a connection.
        read_timeout: Seconds to wait for data when the manager sets no deadline.
        default_params: Parameters sent with every request (e.g. ``{"temperature": 0}``);
            the request's own values win.
        default_headers: Headers sent with every request.
        client: A ready ``openai.OpenAI`` (copied with ``max_retries=0``).
        async_client: A ready ``openai.AsyncOpenAI`` (copied with ``max_retries=0``).

    Raises:
        ConfigurationError: An invalid model name or timeout. A missing SDK raises
            `ProviderConfigurationError` from `warm` or the first call; a missing key
            raises `MissingAPIKeyError` at each call.
    """

    provider_name = "openai"
    sdk_module: ClassVar[str] = "openai"
    sdk_extra: ClassVar[str] = "openai"
    #: The request field that carries ``max_tokens`` (OpenAI's newer name by default).
    max_tokens_param: ClassVar[str] = "max_completion_tokens"
    #: Whether streams ask for a final usage chunk.
    stream_usage: bool = True
    #: Images and PDFs; audio for OpenAI's audio models (see `_capability_defaults`).
    capabilities: ModelCapabilities = OPENAI

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        organization: str | None = None,
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
            api_key_env="OPENAI_API_KEY",
            requires_key=True,
            base_url=base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            default_params=default_params,
            default_headers=default_headers,
            client=client,
            async_client=async_client,
        )
        self.organization = organization
        if type(self).capabilities is OPENAI:  # not a compatible server's subclass
            self.capabilities = openai_capabilities(model)

    def _make_client(self, sdk: ModuleType, *, asynchronous: bool) -> Any:
        cls = sdk.AsyncOpenAI if asynchronous else sdk.OpenAI
        return cls(
            # A keyless endpoint still gets a placeholder: given None, the SDK would read
            # OPENAI_API_KEY and send the OpenAI key to a third party.
            api_key=self._api_key() or NO_KEY,
            base_url=self.base_url,
            organization=self.organization,
            timeout=self._client_timeout(sdk),
            max_retries=0,
            default_headers=self.default_headers or None,
            http_client=self._async_http_client(sdk) if asynchronous else None,
        )

    def _params(self, request: ChatRequest, timeout: float | None) -> dict[str, Any]:
        params = wire.build_params(
            request,
            self.model,
            max_tokens_param=self.max_tokens_param,
            default_params=self.default_params,
        )
        params["timeout"] = self._call_timeout(timeout)
        return params

    def _stream_params(self, request: ChatRequest, timeout: float | None) -> dict[str, Any]:
        params = self._params(request, timeout)
        params["stream"] = True
        if self.stream_usage:
            params["stream_options"] = {"include_usage": True}
        return params

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Answer ``request`` with one blocking Chat Completions call.

        Raises:
            ProviderError: The call failed (translated from the SDK error).
        """
        try:
            create = self.sync_client().chat.completions.create
            completion = create(**fit_to_signature(create, self._params(request, timeout)))
            return wire.parse_completion(completion, self.provider_name)
        except Exception as exc:
            error = self._translate(exc)
            if error is None or error is exc:
                raise
            raise error from exc

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Answer ``request`` with one asynchronous Chat Completions call.

        Raises:
            ProviderError: The call failed (translated from the SDK error).
        """
        try:
            create = self.async_client().chat.completions.create
            params = fit_to_signature(create, self._params(request, timeout))
            completion = await create(**params)
            return wire.parse_completion(completion, self.provider_name)
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

        def open_stream() -> Any:
            create = self.sync_client().chat.completions.create
            return create(**fit_to_signature(create, self._stream_params(request, timeout)))

        return self._pump(open_stream, wire.StreamState(self.provider_name))

    def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`.

        Raises:
            ProviderError: The call failed, the stream broke, or it ended unfinished.
        """

        async def open_stream() -> Any:
            create = self.async_client().chat.completions.create
            return await create(**fit_to_signature(create, self._stream_params(request, timeout)))

        return self._apump(open_stream, wire.StreamState(self.provider_name))

    def describe(self) -> dict[str, object]:
        """Public facts about this provider; never the key."""
        info = super().describe()
        if self.organization:
            info["organization"] = self.organization
        return info
