"""LangChain adapters over recorded wire transcripts: tool calls assembled by the core's rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from langchain_reliable_llm import ReliableChatModel
from langchain_reliable_llm._provider import LangChainChatProvider

from reliable_llm import LLMManager, StreamAccumulator, ToolCall
from reliable_llm.providers import OpenAIProvider
from reliable_llm.testing.fake_server import FakeLLMServer, Transcript

TRANSCRIPTS = Path(__file__).resolve().parents[3] / "tests" / "wire" / "transcripts"
MODEL = "gpt-test"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A started fake server, stopped after the test."""
    with FakeLLMServer() as fake:
        yield fake


def _index_zero_parallel_calls() -> Transcript:
    """Two calls a server numbers both 0 (issue 10, input 1): an input, not a recording."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def chunk(delta: dict[str, object], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return "data: " + json.dumps({**base, "choices": [choice]}) + "\n\n"

    def call(id: str | None, name: str | None, arguments: str) -> dict[str, object]:
        function: dict[str, object] = {"arguments": arguments}
        entry: dict[str, object] = {"index": 0, "function": function}
        if id is not None:
            entry.update(id=id, type="function")
            function["name"] = name
        return {"tool_calls": [entry]}

    body = (
        chunk({"role": "assistant", "content": None})
        + chunk(call("call_a", "get_weather", ""))
        + chunk(call(None, None, '{"city": "Paris"}'))
        + chunk(call("call_b", "get_time", ""))
        + chunk(call(None, None, '{"tz": "CET"}'))
        + chunk({}, "tool_calls")
        + "data: [DONE]\n\n"
    )
    return Transcript(body.encode())


def test_wrapped_chat_openai_keeps_parallel_calls_at_one_index_apart(
    server: FakeLLMServer,
) -> None:
    """LangChainChatProvider's chunk folding gives each call its own slot."""
    server.script(MODEL, _index_zero_parallel_calls())
    chat = ChatOpenAI(model=MODEL, api_key="sk-test", base_url=server.openai_base_url)
    manager = LLMManager(enable_caching=False)
    manager.register_model("lc", LangChainChatProvider(chat))

    acc = StreamAccumulator()
    for chunk in manager.stream("weather and time?"):
        acc.add(chunk)

    assert acc.response().tool_calls == (
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", '{"tz": "CET"}'),
    )


def test_reliable_chat_model_streams_a_recorded_parallel_tool_call_answer(
    server: FakeLLMServer,
) -> None:
    """ReliableChatModel over OpenAIProvider streams OpenAI's recorded two-call answer whole."""
    server.script(MODEL, Transcript.from_file(TRANSCRIPTS / "openai_parallel_tools.sse"))
    provider = OpenAIProvider(MODEL, api_key="sk-test", base_url=server.openai_base_url)
    manager = LLMManager(enable_caching=False)
    manager.register_model(MODEL, provider)
    model = ReliableChatModel(manager=manager)

    merged: AIMessageChunk | None = None
    for chunk in model.stream("weather and stock?"):
        merged = chunk if merged is None else merged + chunk
    provider.close()

    assert merged is not None
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
        ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
    ]
