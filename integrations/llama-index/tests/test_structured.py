"""Structured output through ReliableLLM, streamed and not, over the wire.

The fake server streams the forced tool call's arguments a few characters per chunk, as
OpenAI does; LlamaIndex's own programs parse the partial responses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.reliable import ReliableLLM
from pydantic import BaseModel

from reliable_llm.providers import OpenAIProvider
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, ToolCallSpec, server_error

# StructuredLLM's stream_chat serialises partial objects with pydantic's deprecated .json();
# only that deprecation, raised from LlamaIndex's module, is ignored.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `json` method is deprecated:DeprecationWarning:llama_index.core.llms.structured_llm"
)

PROMPT = PromptTemplate("Which city is the capital of {country}?")
PARIS = {"name": "Paris", "country": "France"}


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str


def _build(server: FakeLLMServer) -> tuple[ReliableLLM, list[OpenAIProvider]]:
    """A ReliableLLM whose primary is down and whose backup answers with a City tool call."""
    server.set_default("gpt-down", server_error(503))
    server.set_default("gpt-up", Reply(tool_calls=[ToolCallSpec("City", PARIS)], chunk_size=4))
    providers = [
        OpenAIProvider(name, api_key="sk-test", base_url=server.openai_base_url)
        for name in ("gpt-down", "gpt-up")
    ]
    llm = ReliableLLM(
        models={"primary": providers[0], "backup": providers[1]},
        max_retries=0,
        enable_caching=False,
        clock=FakeClock(),
    )
    return llm, providers


@pytest.fixture
def llm(fake_llm_server: FakeLLMServer) -> Iterator[ReliableLLM]:
    """The LLM for sync tests; the SDK clients' connections are closed afterwards."""
    built, providers = _build(fake_llm_server)
    yield built
    for provider in providers:
        provider.close()


@pytest.fixture
async def allm(fake_llm_server: FakeLLMServer) -> AsyncIterator[ReliableLLM]:
    """The LLM for async tests; the async clients are closed on the test's loop."""
    built, providers = _build(fake_llm_server)
    yield built
    for provider in providers:
        await provider.aclose()


def _filled(objects: list[object]) -> None:
    assert len(objects) > 1, "expected partial objects before the last"
    assert isinstance(objects[-1], BaseModel)
    assert objects[-1].model_dump() == PARIS


def test_structured_predict_fills_the_object(llm: ReliableLLM) -> None:
    """structured_predict returns the City the fallback model described."""
    assert llm.structured_predict(City, PROMPT, country="France") == City(**PARIS)


def test_stream_structured_predict_fills_the_object(llm: ReliableLLM) -> None:
    """stream_structured_predict yields partial objects ending in the filled City."""
    _filled(list(llm.stream_structured_predict(City, PROMPT, country="France")))


async def test_astream_structured_predict_fills_the_object(allm: ReliableLLM) -> None:
    """astream_structured_predict yields partial objects ending in the filled City."""
    stream = await allm.astream_structured_predict(City, PROMPT, country="France")
    _filled([obj async for obj in stream])


def test_structured_llm_stream_chat_fills_the_object(llm: ReliableLLM) -> None:
    """as_structured_llm(City).stream_chat ends with the filled City as its raw output."""
    structured = llm.as_structured_llm(City)
    responses = list(structured.stream_chat([ChatMessage(role="user", content="France?")]))
    _filled([r.raw for r in responses])
    assert City.model_validate_json(responses[-1].message.content or "") == City(**PARIS)


async def test_structured_llm_astream_chat_fills_the_object(allm: ReliableLLM) -> None:
    """as_structured_llm(City).astream_chat ends with the filled City as its raw output."""
    structured = allm.as_structured_llm(City)
    stream = await structured.astream_chat([ChatMessage(role="user", content="France?")])
    _filled([r.raw async for r in stream])
