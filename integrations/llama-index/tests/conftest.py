"""Fixtures for the LlamaIndex integration tests: a fake clock and an instrumentation recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from reliable_llm.testing import FakeClock


class RecordingHandler(BaseEventHandler):
    """Keeps every instrumentation event it sees."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "RecordingHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, name: str) -> list[Any]:
        """The recorded events whose class name is ``name``."""
        return [e for e in self.events if type(e).__name__ == name]


@pytest.fixture
def clock() -> FakeClock:
    """A clock on which retries and breaker timeouts pass instantly."""
    return FakeClock()


@pytest.fixture
def recorder() -> Iterator[RecordingHandler]:
    """Record LlamaIndex instrumentation events for the duration of a test."""
    root = get_dispatcher()
    handler = RecordingHandler(events=[])
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers.remove(handler)


@pytest.fixture
def event_loop_for_sync_llama_index() -> Iterator[None]:
    """Give LlamaIndex's sync code paths an event loop that is closed after the test.

    LlamaIndex's synchronous prompt helper estimates tokens through ``asyncio_run``, which
    calls ``asyncio.get_event_loop()`` and so creates (and never closes) a loop in the main
    thread; under ``filterwarnings=error`` its later garbage collection fails a random test
    with ResourceWarning. Setting our own loop first, and closing it, keeps that contained.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()
