"""Fixtures: the fake server and official SDK clients pointed at it (SDK retries off)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest

from reliable_llm.testing.fake_server import FakeLLMServer
from reliable_llm.testing.fake_server.pytest_plugin import fake_llm_server as fake_llm_server

AZURE_API_VERSION = "2024-10-21"


@pytest.fixture
def server(fake_llm_server: FakeLLMServer) -> FakeLLMServer:
    """The started fake server of this test."""
    return fake_llm_server


@pytest.fixture
def openai_client(server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    """A sync OpenAI client for the fake server."""
    with openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as client:
        yield client


@pytest.fixture
async def async_openai_client(server: FakeLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """An async OpenAI client for the fake server."""
    async with openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as client:
        yield client


@pytest.fixture
def azure_client(server: FakeLLMServer) -> Iterator[openai.AzureOpenAI]:
    """A sync Azure OpenAI client for the fake server."""
    with openai.AzureOpenAI(
        azure_endpoint=server.azure_endpoint,
        api_version=AZURE_API_VERSION,
        api_key="azure-test",
        max_retries=0,
        timeout=5,
    ) as client:
        yield client


@pytest.fixture
def anthropic_client(server: FakeLLMServer) -> Iterator[anthropic.Anthropic]:
    """A sync Anthropic client for the fake server."""
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, timeout=5
    ) as client:
        yield client


@pytest.fixture
async def async_anthropic_client(server: FakeLLMServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """An async Anthropic client for the fake server."""
    async with anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, timeout=5
    ) as client:
        yield client
