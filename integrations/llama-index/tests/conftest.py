"""Fixtures for the LlamaIndex integration tests: clock, events, an index and the fake server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server.pytest_plugin import fake_llm_server

__all__ = ["fake_llm_server"]


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


KEYWORDS = ("paris", "france", "tokyo", "japan", "lima", "peru")
DOCUMENTS = {
    "france": "Paris is the capital of France. The Eiffel Tower stands in Paris.",
    "japan": "Tokyo is the capital of Japan. Sushi is popular in Tokyo.",
    "peru": "Lima is the capital of Peru. Machu Picchu is near Cusco.",
}


class KeywordEmbedding(MockEmbedding):
    """MockEmbedding whose vectors count a few keywords, so retrieval finds the right text."""

    def _vector(self, text: str) -> list[float]:
        lowered = text.lower()
        return [lowered.count(k) + 0.01 for k in KEYWORDS]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


@pytest.fixture
def capital_index() -> VectorStoreIndex:
    """Three one-sentence documents about capitals, indexed with KeywordEmbedding."""
    documents = [Document(text=t, doc_id=k) for k, t in DOCUMENTS.items()]
    return VectorStoreIndex.from_documents(
        documents, embed_model=KeywordEmbedding(embed_dim=len(KEYWORDS))
    )


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
