"""A VectorStoreIndex query engine on ReliableLLM while the primary model is down."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.llms.reliable import ReliableLLM

from reliable_llm import ServerError
from reliable_llm.testing import FakeClock, ScriptedModel

ANSWER = "The capital of France is Paris."
QUESTION = "What is the capital of France?"


class Setup:
    """An index, a ReliableLLM whose primary is down, and both scripted models."""

    def __init__(self, clock: FakeClock, index: VectorStoreIndex) -> None:
        self.primary = ScriptedModel(default=ServerError("primary down", status_code=503))
        self.backup = ScriptedModel(default=ANSWER, chunk_size=5)
        self.llm = ReliableLLM(
            models={"primary": self.primary, "backup": self.backup},
            model="primary",
            fallbacks=["backup"],
            max_retries=1,
            clock=clock,
        )
        self.index = index

    def engine(self, streaming: bool = False) -> Any:
        return self.index.as_query_engine(llm=self.llm, similarity_top_k=1, streaming=streaming)

    def check(self, response: Any, text: str) -> None:
        """The answer came from the backup, grounded in the France document only."""
        assert text == ANSWER
        (node,) = response.source_nodes
        assert node.node.ref_doc_id == "france"
        prompt = self.backup.calls[0].prompt
        assert "Eiffel Tower" in prompt and QUESTION in prompt
        assert "Tokyo" not in prompt
        assert self.primary.call_count == 2
        metrics = self.llm.manager.get_metrics()
        assert metrics["fallbacks"]["by_pair"] == {"primary->backup": 1}

    def assert_cache_hit(self) -> None:
        """The repeated query was answered from the cache, with no new upstream call."""
        metrics = self.llm.manager.get_metrics()
        assert metrics["cache"]["hits"] == 1
        assert self.backup.call_count == 1
        assert self.primary.call_count == 2


@pytest.fixture
def setup(clock: FakeClock, capital_index: VectorStoreIndex) -> Setup:
    """A fresh LLM per test over the capitals index."""
    return Setup(clock, capital_index)


@pytest.mark.usefixtures("event_loop_for_sync_llama_index")
def test_sync_query_falls_back_and_repeats_from_cache(setup: Setup) -> None:
    """query() answers from the backup with the right source; the same query hits the cache."""
    engine = setup.engine()
    response = engine.query(QUESTION)
    assert isinstance(response, Response)
    setup.check(response, str(response))
    again = engine.query(QUESTION)
    assert str(again) == ANSWER
    setup.assert_cache_hit()


async def test_async_query_falls_back_and_repeats_from_cache(setup: Setup) -> None:
    """aquery() answers from the backup with the right source; the same query hits the cache."""
    engine = setup.engine()
    response = await engine.aquery(QUESTION)
    setup.check(response, str(response))
    again = await engine.aquery(QUESTION)
    assert str(again) == ANSWER
    setup.assert_cache_hit()


@pytest.mark.usefixtures("event_loop_for_sync_llama_index")
def test_streaming_query_falls_back_and_repeats_from_cache(setup: Setup) -> None:
    """A streaming query streams the backup's answer in pieces; the repeat is replayed."""
    engine = setup.engine(streaming=True)
    response = engine.query(QUESTION)
    assert isinstance(response, StreamingResponse)
    pieces = list(response.response_gen)
    assert len(pieces) > 1
    setup.check(response, "".join(pieces))
    again = engine.query(QUESTION)
    assert "".join(again.response_gen) == ANSWER
    setup.assert_cache_hit()


async def test_async_streaming_query_falls_back_and_repeats_from_cache(setup: Setup) -> None:
    """An async streaming query streams the backup's answer; the repeat is replayed."""
    engine = setup.engine(streaming=True)
    response = await engine.aquery(QUESTION)
    assert isinstance(response, AsyncStreamingResponse)
    pieces = [piece async for piece in response.async_response_gen()]
    assert len(pieces) > 1
    setup.check(response, "".join(pieces))
    again = await engine.aquery(QUESTION)
    assert "".join([p async for p in again.async_response_gen()]) == ANSWER
    setup.assert_cache_hit()
