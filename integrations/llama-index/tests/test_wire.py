"""Over the wire: ReliableLLM on the OpenAI and Anthropic providers against the fake server.

The primary model speaks OpenAI's protocol and answers 503; the fallback speaks Anthropic's.
The official SDKs make real HTTP calls to the local fake server (127.0.0.1 only).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.reliable import ReliableLLM

from reliable_llm import BreakerPolicy
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, ToolCallSpec, server_error

# llama-index-workflows discovers steps with inspect.getmembers(), which reads the agent's
# deprecated pydantic attributes; only pydantic deprecations raised from inspect are ignored.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecationWarning:inspect"
)

PRIMARY, BACKUP = "gpt-primary", "claude-backup"
ANSWER = "The capital of France is Paris."
QUESTION = "What is the capital of France?"


class Wire:
    """A ReliableLLM whose primary (OpenAI wire) is down and whose backup is Anthropic."""

    def __init__(self, server: FakeLLMServer, clock: FakeClock) -> None:
        self.server = server
        server.set_default(PRIMARY, server_error(503))
        self.primary = OpenAIProvider(PRIMARY, api_key="sk-test", base_url=server.openai_base_url)
        self.backup = AnthropicProvider(
            BACKUP, api_key="sk-test", base_url=server.anthropic_base_url
        )
        self.llm = ReliableLLM(
            models={"primary": self.primary, "backup": self.backup},
            model_metadata={"primary": {"context_window": 16_000}},
            model="primary",
            fallbacks=["backup"],
            max_retries=1,
            breaker=BreakerPolicy(failure_threshold=2),
            clock=clock,
        )

    def close(self) -> None:
        self.primary.close()
        self.backup.close()

    def backup_bodies(self) -> list[dict[str, Any]]:
        return [r.body or {} for r in self.server.requests if r.model == BACKUP]


@pytest.fixture
def wire(fake_llm_server: FakeLLMServer, clock: FakeClock) -> Iterator[Wire]:
    """The wire setup; the SDK clients' sync connections are closed afterwards."""
    setup = Wire(fake_llm_server, clock)
    try:
        yield setup
    finally:
        setup.close()


@pytest.fixture
async def awire(fake_llm_server: FakeLLMServer, clock: FakeClock) -> AsyncIterator[Wire]:
    """The wire setup for async tests; both SDK clients are closed on the test's loop."""
    setup = Wire(fake_llm_server, clock)
    try:
        yield setup
    finally:
        await setup.primary.aclose()
        await setup.backup.aclose()


def check_answer(wire: Wire, response: Any, text: str) -> None:
    """The backup answered from the France document after two failed primary attempts."""
    assert text == ANSWER
    (node,) = response.source_nodes
    assert node.node.ref_doc_id == "france"
    (body,) = wire.backup_bodies()
    sent = json.dumps(body)
    assert "Eiffel Tower" in sent and QUESTION in sent and "Tokyo" not in sent
    assert wire.server.request_count(PRIMARY) == 2
    assert wire.llm.manager.get_model_info("primary")["breaker"]["state"] == "open"


def check_cached(wire: Wire) -> None:
    """The repeated query was a cache hit: no new request reached the server."""
    assert wire.llm.manager.get_metrics()["cache"]["hits"] == 1
    assert wire.server.request_count(BACKUP) == 1
    assert wire.server.request_count(PRIMARY) == 2


@pytest.mark.usefixtures("event_loop_for_sync_llama_index")
def test_wire_query_falls_back_to_anthropic(wire: Wire, capital_index: VectorStoreIndex) -> None:
    """query() over the wire falls back from a 503 OpenAI model to Anthropic, then caches."""
    wire.server.script(BACKUP, Reply(ANSWER))
    engine = capital_index.as_query_engine(llm=wire.llm, similarity_top_k=1)
    response = engine.query(QUESTION)
    check_answer(wire, response, str(response))
    assert str(engine.query(QUESTION)) == ANSWER
    check_cached(wire)


@pytest.mark.usefixtures("event_loop_for_sync_llama_index")
def test_wire_streaming_query_falls_back_to_anthropic(
    wire: Wire, capital_index: VectorStoreIndex
) -> None:
    """A streaming query streams Anthropic's SSE answer in pieces after the 503s."""
    wire.server.script(BACKUP, Reply(ANSWER, chunk_size=4))
    engine = capital_index.as_query_engine(llm=wire.llm, similarity_top_k=1, streaming=True)
    response = engine.query(QUESTION)
    pieces = list(response.response_gen)
    assert len(pieces) > 3
    check_answer(wire, response, "".join(pieces))
    assert wire.backup_bodies()[0].get("stream") is True
    assert "".join(engine.query(QUESTION).response_gen) == ANSWER
    check_cached(wire)


async def test_wire_async_query_falls_back_to_anthropic(
    awire: Wire, capital_index: VectorStoreIndex
) -> None:
    """aquery() over the wire falls back to Anthropic through the async SDK clients."""
    awire.server.script(BACKUP, Reply(ANSWER))
    engine = capital_index.as_query_engine(llm=awire.llm, similarity_top_k=1)
    response = await engine.aquery(QUESTION)
    check_answer(awire, response, str(response))
    assert str(await engine.aquery(QUESTION)) == ANSWER
    check_cached(awire)


async def test_wire_async_streaming_query_falls_back_to_anthropic(
    awire: Wire, capital_index: VectorStoreIndex
) -> None:
    """An async streaming query streams Anthropic's answer through the async SDK client."""
    awire.server.script(BACKUP, Reply(ANSWER, chunk_size=4))
    engine = capital_index.as_query_engine(llm=awire.llm, similarity_top_k=1, streaming=True)
    response = await engine.aquery(QUESTION)
    pieces = [p async for p in response.async_response_gen()]
    assert len(pieces) > 3
    check_answer(awire, response, "".join(pieces))
    again = await engine.aquery(QUESTION)
    assert "".join([p async for p in again.async_response_gen()]) == ANSWER
    check_cached(awire)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@pytest.mark.parametrize("streaming", [False, True])
async def test_wire_function_agent_tool_loop(streaming: bool, awire: Wire) -> None:
    """A FunctionAgent runs add then multiply on Anthropic's tool_use while OpenAI is down."""
    awire.server.script(
        BACKUP,
        Reply(tool_calls=[ToolCallSpec("add", {"a": 2, "b": 3}, id="toolu_1")], chunk_size=5),
        Reply(tool_calls=[ToolCallSpec("multiply", {"a": 5, "b": 4}, id="toolu_2")]),
        Reply("The result is 20.", chunk_size=5),
    )
    tools = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]
    agent = FunctionAgent(tools=tools, llm=awire.llm, streaming=streaming)
    handler = agent.run(user_msg="What is (2 + 3) * 4?")
    deltas = [e.delta async for e in handler.stream_events() if isinstance(e, AgentStream)]
    result = await handler
    assert str(result) == "The result is 20."
    assert [(t.tool_name, t.tool_output.content) for t in result.tool_calls] == [
        ("add", "5"),
        ("multiply", "20"),
    ]
    assert awire.server.request_count(PRIMARY) == 2
    bodies = awire.backup_bodies()
    assert len(bodies) == 3
    assert [t["name"] for t in bodies[0]["tools"]] == ["add", "multiply"]
    results = [
        (block["tool_use_id"], block["content"])
        for message in bodies[2]["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert [call_id for call_id, _ in results] == ["toolu_1", "toolu_2"]
    assert "5" in json.dumps(results[0][1]) and "20" in json.dumps(results[1][1])
    if streaming:
        assert all(b.get("stream") for b in bodies)
        assert "".join(deltas).endswith("The result is 20.")
