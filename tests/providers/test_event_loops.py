"""Async clients follow the event loop: providers survive ``asyncio.run`` being called again."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from reliable_llm import ChatRequest, LLMManager, Message
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import FakeLLMServer


def _providers(server: FakeLLMServer) -> list[SDKProvider]:
    return [
        OpenAIProvider("gpt-test", api_key="k", base_url=server.openai_base_url),
        AnthropicProvider("claude-test", api_key="k", base_url=server.anthropic_base_url),
    ]


# A loop closed without `await provider.aclose()` leaves its pooled sockets open; nothing
# can close them once the loop is gone, so their ResourceWarnings are expected here.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_provider_works_across_asyncio_run_calls(server: FakeLLMServer) -> None:
    """Three asyncio.run calls through one manager all succeed on the first attempt."""
    for provider in _providers(server):
        manager = LLMManager(enable_caching=False, clock=FakeClock())
        manager.register_model("m", provider)

        answers = [asyncio.run(manager.achat("hi")) for _ in range(3)]

        assert [a.text for a in answers] == ["ok"] * 3
        assert all(len(a.attempts) == 1 for a in answers)
        asyncio.run(provider.aclose())
    gc.collect()  # so the expected warnings surface inside this test


def test_each_live_loop_gets_its_own_client(server: FakeLLMServer) -> None:
    """Two open loops (say, two threads) use separate clients, each closed by aclose()."""
    provider = OpenAIProvider("gpt-test", api_key="k", base_url=server.openai_base_url)
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
    try:
        clients = []
        for loop in loops * 2:
            clients.append(loop.run_until_complete(_client_after_call(provider)))
        assert clients[0] is clients[2] and clients[1] is clients[3]
        assert clients[0] is not clients[1]
        for loop in loops:
            loop.run_until_complete(provider.aclose())
        assert all(client.is_closed() for client in clients)
    finally:
        for loop in loops:
            loop.close()


async def _client_after_call(provider: OpenAIProvider) -> Any:
    await provider.acomplete(ChatRequest((Message.user("hi"),)))
    return provider.async_client()
