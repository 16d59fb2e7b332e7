"""Fixtures for the LlamaIndex integration tests: a fake clock and an instrumentation recorder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from reliable_llm.testing import FakeClock


class RecordingHandler(BaseEventHandler):
    """Keeps every instrumentation event it sees."""

    events: list[BaseEvent] = []

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
