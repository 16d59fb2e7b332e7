"""Shared fixtures: a fake clock, a manager on it, and one way to call every driver."""

from __future__ import annotations

from typing import Any

import pytest
from drivers import DRIVERS, Ask, ask_with

from reliable_llm import ChatResponse, LLMManager
from reliable_llm.testing import FakeClock


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
