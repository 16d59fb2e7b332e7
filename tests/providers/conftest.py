"""Fixtures for provider tests: the fake server, providers pointed at it, and a manager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from reliable_llm import (
    ChatResponse,
    LLMManager,
    Provider,
    RetryPolicy,
    StreamAccumulator,
    StreamChunk,
    TimeoutPolicy,
)
from reliable_llm.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    OpenAIProvider,
    preset,
)
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer

SENTINEL = "sk-SENTINEL-1234"
KINDS = ("openai", "azure", "anthropic", "groq")
MODES = ("sync", "async", "stream", "astream")


@dataclass
class Target:
    """A provider pointed at the fake server, and the name the server scripts it under."""

    kind: str
    provider: Provider
    scripted_as: str

    @property
    def protocol(self) -> str:
        """The wire protocol the provider speaks."""
        return "anthropic" if self.kind == "anthropic" else "openai"


def make_target(server: FakeLLMServer, kind: str, *, api_key: str = SENTINEL) -> Target:
    """Build a provider of ``kind`` that talks to ``server``."""
    if kind == "openai":
        provider: Provider = OpenAIProvider(
            "gpt-test", api_key=api_key, base_url=server.openai_base_url
        )
        return Target(kind, provider, "gpt-test")
    if kind == "azure":
        provider = AzureOpenAIProvider(
            "deploy-test", endpoint=server.azure_endpoint, api_key=api_key
        )
        return Target(kind, provider, "deploy-test")
    if kind == "anthropic":
        provider = AnthropicProvider(
            "claude-test", api_key=api_key, base_url=server.anthropic_base_url
        )
        return Target(kind, provider, "claude-test")
    provider = preset(kind, "llama-test", api_key=api_key, base_url=server.openai_base_url)
    return Target(kind, provider, "llama-test")


@pytest.fixture
async def closing() -> AsyncIterator[list[SDKProvider]]:
    """Providers appended here have their clients closed while the test's loop still runs."""
    providers: list[SDKProvider] = []
    yield providers
    for provider in providers:
        await provider.aclose()


@pytest.fixture
def target(server: FakeLLMServer, closing: list[SDKProvider]) -> Callable[..., Target]:
    """Build a `Target` on the fake server; its clients are closed after the test."""

    def build(kind: str, *, api_key: str = SENTINEL) -> Target:
        made = make_target(server, kind, api_key=api_key)
        assert isinstance(made.provider, SDKProvider)
        closing.append(made.provider)
        return made

    return build


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A started fake server, stopped after the test."""
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock: sleeps are recorded, never slept."""
    return FakeClock()


ManagerFactory = Callable[..., LLMManager]


@pytest.fixture
def make_manager(clock: FakeClock) -> ManagerFactory:
    """Build a manager: ``primary`` is the given provider, ``backup`` a scripted fallback."""

    def build(
        provider: Provider,
        *,
        max_retries: int = 1,
        per_attempt: float = 10.0,
        total: float = 30.0,
        fallback: bool = True,
        caching: bool = False,
        **kwargs: object,
    ) -> LLMManager:
        manager = LLMManager(
            enable_caching=caching,
            retry=RetryPolicy(max_retries=max_retries, initial_delay=0.5, jitter=0.0),
            timeouts=TimeoutPolicy(total=total, per_attempt=per_attempt),
            clock=clock,
            **kwargs,  # type: ignore[arg-type]
        )
        manager.register_model("primary", provider)
        if fallback:
            manager.register_model("backup", ScriptedModel(default="fallback answer"))
            manager.set_fallback_chain(["backup"])
        return manager

    return build


async def ask(
    manager: LLMManager, mode: str, messages: object = "hello", **params: object
) -> ChatResponse:
    """Ask through ``manager`` in ``mode``; a stream gives its whole response."""
    if mode == "sync":
        return manager.chat(messages, **params)  # type: ignore[arg-type]
    if mode == "async":
        return await manager.achat(messages, **params)  # type: ignore[arg-type]
    if mode == "stream":
        stream = manager.stream(messages, **params)  # type: ignore[arg-type]
        for _chunk in stream:
            pass
        assert stream.response is not None
        return stream.response
    astream = manager.astream(messages, **params)  # type: ignore[arg-type]
    async for _chunk in astream:
        pass
    assert astream.response is not None
    return astream.response


def fold(chunks: Iterator[StreamChunk]) -> ChatResponse:
    """Collect a stream; the response's ``model`` is the model that streamed."""
    acc = StreamAccumulator()
    model = ""
    for chunk in chunks:
        acc.add(chunk)
        model = chunk.model
    return acc.response(model=model)


async def afold(chunks: AsyncIterator[StreamChunk]) -> ChatResponse:
    """Async twin of `fold`."""
    acc = StreamAccumulator()
    model = ""
    async for chunk in chunks:
        acc.add(chunk)
        model = chunk.model
    return acc.response(model=model)
