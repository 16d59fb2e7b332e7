"""The single I/O seam: what a model must implement to be served by the manager."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator

from reliable_llm._capabilities import TEXT_ONLY, ModelCapabilities
from reliable_llm._stream import response_to_chunks
from reliable_llm._types import ChatRequest, ChatResponse, StreamChunk

__all__ = ["Provider"]


class Provider(abc.ABC):
    """A model the manager can call: natively sync, async and streaming.

    Implementations translate their SDK's exceptions into `reliable_llm.ProviderError`
    subclasses (with ``raise ... from``) and must not retry on their own: the manager retries.
    ``timeout`` is the number of seconds the call may take, or None for no limit.

    The default streaming methods replay the complete answer as a single chunk; providers
    that can stream override them.
    """

    #: Short provider name reported in responses and metrics (``"openai"``, ``"anthropic"``).
    provider_name: str = "custom"

    #: True when the provider itself ends every blocking call (``complete`` and each step of
    #: ``stream``) within the ``timeout`` it is given, however slowly the upstream answers.
    #: The manager then calls it in the caller's thread; otherwise a blocking call runs in a
    #: worker thread that the manager stops waiting for when the timeout passes.
    enforces_timeout: bool = False

    #: The content parts the model takes (images, audio, documents, reasoning replay, prompt
    #: caching); text only unless the provider declares more. A registration may override it
    #: with ``metadata={"capabilities": {...}}``.
    capabilities: ModelCapabilities = TEXT_ONLY

    def warm(self) -> None:
        """Do the slow one-time set-up (SDK import, client construction) now.

        `LLMManager.register_model` calls it, so the first request does not pay for it inside
        its attempt (and never on the event loop). It must not raise for a missing API key:
        that is reported when a call is made. The default does nothing.
        """
        return None

    @abc.abstractmethod
    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Answer ``request`` in one blocking call."""

    @abc.abstractmethod
    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Answer ``request`` without blocking the event loop."""

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        """Stream the answer to ``request``."""
        return response_to_chunks(self.complete(request, timeout=timeout))

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Stream the answer to ``request`` without blocking the event loop."""
        response = await self.acomplete(request, timeout=timeout)
        for chunk in response_to_chunks(response):
            yield chunk

    def describe(self) -> dict[str, object]:
        """Public, secret-free facts about this provider for `LLMManager.get_model_info`."""
        return {"provider": self.provider_name}
