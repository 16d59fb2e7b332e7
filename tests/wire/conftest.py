"""Fixtures for the wire corpus tests: a fake server that replays transcripts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing.fake_server import FakeLLMServer


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A started fake server, stopped after the test."""
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
async def closing() -> AsyncIterator[list[SDKProvider]]:
    """Providers appended here have their clients closed while the test's loop still runs."""
    providers: list[SDKProvider] = []
    yield providers
    for provider in providers:
        await provider.aclose()
