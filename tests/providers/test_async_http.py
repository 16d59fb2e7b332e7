"""The async providers' HTTP stack: aiohttp when installed, with timeouts and errors intact."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import openai
import pytest

from reliable_llm import ChatRequest, Message, ProviderConnectionError, ProviderTimeoutError
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing.fake_server import FakeLLMServer, ResetConnection, slow_headers
from tests.providers.conftest import KINDS, Target

REQUEST = ChatRequest((Message.user("hi"),))


def _sdk_provider(
    target: Callable[..., Target], kind: str, backend: str
) -> tuple[Target, SDKProvider]:
    made = target(kind)
    provider = made.provider
    assert isinstance(provider, SDKProvider)
    provider.async_http = backend
    return made, provider


@pytest.mark.parametrize("kind", KINDS)
async def test_async_clients_are_aiohttp_backed_by_default(
    kind: str, target: Callable[..., Target]
) -> None:
    """With the aiohttp extra installed, the async SDK client runs on aiohttp; 'httpx' opts out."""
    aio = (openai.DefaultAioHttpClient, anthropic.DefaultAioHttpClient)
    _, provider = _sdk_provider(target, kind, "auto")
    assert isinstance(provider.async_client()._client, aio)
    _, plain = _sdk_provider(target, kind, "httpx")
    assert not isinstance(plain.async_client()._client, aio)


@pytest.mark.parametrize("backend", ["auto", "httpx"])
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_async_timeouts_hold_on_either_stack(
    kind: str, backend: str, server: FakeLLMServer, target: Callable[..., Target]
) -> None:
    """A response whose headers stall past the call's timeout raises ProviderTimeoutError."""
    made, provider = _sdk_provider(target, kind, backend)
    server.script(made.scripted_as, slow_headers(1.0))

    with pytest.raises(ProviderTimeoutError):
        await provider.acomplete(REQUEST, timeout=0.3)


@pytest.mark.parametrize("backend", ["auto", "httpx"])
async def test_async_connection_reset_is_a_connection_error(
    backend: str, server: FakeLLMServer, target: Callable[..., Target]
) -> None:
    """A reset connection is a ProviderConnectionError on either stack, never a timeout."""
    made, provider = _sdk_provider(target, "openai", backend)
    server.script(made.scripted_as, ResetConnection())

    with pytest.raises(ProviderConnectionError):
        await provider.acomplete(REQUEST)
