"""Fixtures: the fake server and official SDK clients pointed at it (SDK retries off).

The fake speaks plain HTTP on 127.0.0.1, so no TLS happens; the clients get an HTTP client
built with ``verify=False`` only because that skips loading the CA bundle, which otherwise
dominates each test's setup time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest

from reliable_llm.testing.fake_server import FakeLLMServer
from reliable_llm.testing.fake_server.pytest_plugin import fake_llm_server as fake_llm_server


@pytest.fixture
def server(fake_llm_server: FakeLLMServer) -> FakeLLMServer:
    """The started fake server of this test."""
    return fake_llm_server


@pytest.fixture
def openai_client(server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    """A sync OpenAI client for the fake server."""
    with openai.OpenAI(
        base_url=server.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=5,
        http_client=openai.DefaultHttpxClient(verify=False),
    ) as client:
        yield client


@pytest.fixture
async def async_openai_client(server: FakeLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """An async OpenAI client for the fake server."""
    async with openai.AsyncOpenAI(
        base_url=server.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=5,
        http_client=openai.DefaultAsyncHttpxClient(verify=False),
    ) as client:
        yield client


@pytest.fixture
def azure_api_version() -> str:
    """The api-version the Azure client sends."""
    return "2024-10-21"


@pytest.fixture
def azure_client(server: FakeLLMServer, azure_api_version: str) -> Iterator[openai.AzureOpenAI]:
    """A sync Azure OpenAI client for the fake server."""
    with openai.AzureOpenAI(
        azure_endpoint=server.azure_endpoint,
        api_version=azure_api_version,
        api_key="azure-test",
        max_retries=0,
        timeout=5,
        http_client=openai.DefaultHttpxClient(verify=False),
    ) as client:
        yield client


@pytest.fixture
def anthropic_client(server: FakeLLMServer) -> Iterator[anthropic.Anthropic]:
    """A sync Anthropic client for the fake server."""
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url,
        api_key="sk-ant-test",
        max_retries=0,
        timeout=5,
        http_client=anthropic.DefaultHttpxClient(verify=False),
    ) as client:
        yield client


@pytest.fixture
async def async_anthropic_client(server: FakeLLMServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """An async Anthropic client for the fake server."""
    async with anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url,
        api_key="sk-ant-test",
        max_retries=0,
        timeout=5,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=False),
    ) as client:
        yield client
