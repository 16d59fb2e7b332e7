"""What a LangChain user would write: chains, an agent and event streaming through outages."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRetryMiddleware
from langchain_core.exceptions import ModelAPIError
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_reliable_llm import ReliableAPIError, ReliableChatModel
from langchain_reliable_llm.testing import SmartFakeModel

from reliable_llm import BreakerPolicy, LLMManager, ServerError
from reliable_llm.testing import FakeClock, ScriptedModel


def _outage() -> ScriptedModel:
    return ScriptedModel(default=ServerError("503 Service Unavailable", status_code=503))


def test_chain_falls_back_then_serves_the_repeat_from_cache() -> None:
    """prompt | model | parser answers through the fallback; the rerun is a cache hit."""
    primary, backup = _outage(), ScriptedModel(default="Bonjour!")
    manager = LLMManager(max_retries=2, clock=FakeClock())
    manager.register_model("primary", primary)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Translate to French."), ("human", "{text}")]
    )
    chain = prompt | ReliableChatModel(manager=manager) | StrOutputParser()

    assert chain.invoke({"text": "Hello!"}) == "Bonjour!"
    assert (primary.call_count, backup.call_count) == (3, 1)
    assert chain.invoke({"text": "Hello!"}) == "Bonjour!"
    assert (primary.call_count, backup.call_count) == (3, 1)

    metrics = manager.get_metrics()
    assert metrics["cache"]["hits"] == 1
    assert metrics["fallbacks"]["by_pair"] == {"primary->backup": 1}
    assert metrics["retries"] == 2
    assert metrics["models"]["backup"]["success_count"] == 1


@tool
def get_weather(city: str) -> str:
    """Return the weather in a city."""
    return f"It is sunny in {city}."


@tool
def get_time(city: str) -> str:
    """Return the local time in a city."""
    return f"It is noon in {city}."


def test_agent_finishes_its_tool_loop_while_the_primary_is_down() -> None:
    """An agent with two tools completes on the fallback; the primary's breaker opens."""
    primary, smart = _outage(), SmartFakeModel()
    manager = LLMManager(
        max_retries=1, clock=FakeClock(), breaker=BreakerPolicy(failure_threshold=2)
    )
    manager.register_model("primary", primary)
    manager.register_model("smart", smart)
    manager.set_fallback_chain(["smart"])
    agent = create_agent(ReliableChatModel(manager=manager), [get_weather, get_time])

    state: dict[str, Any] = agent.invoke(
        {"messages": [HumanMessage("Use get_weather and get_time for 'Paris'.")]}
    )

    messages = state["messages"]
    tool_results = sorted(m.content for m in messages if isinstance(m, ToolMessage))
    assert tool_results == ["It is noon in Paris.", "It is sunny in Paris."]
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "sunny in Paris" in final.text and "noon in Paris" in final.text
    assert final.response_metadata["model_name"] == "smart"
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"
    # Two attempts opened the breaker; the agent's second model call skipped the primary.
    assert primary.call_count == 2
    assert smart.call_count == 2


async def test_astream_events_stream_the_fallback_when_the_primary_fails_first() -> None:
    """astream_events on a chain shows the fallback's tokens after the primary failed."""
    primary, smart = _outage(), SmartFakeModel(chunk_size=4)
    manager = LLMManager(max_retries=1, clock=FakeClock())
    manager.register_model("primary", primary)
    manager.register_model("smart", smart)
    manager.set_fallback_chain(["smart"])
    chain = (
        ChatPromptTemplate.from_messages([("human", "{question}")])
        | ReliableChatModel(manager=manager)
        | StrOutputParser()
    )

    tokens: list[str] = []
    starts, ends = 0, []
    async for event in chain.astream_events({"question": "status report"}, version="v2"):
        if event["event"] == "on_chat_model_start":
            starts += 1
        elif event["event"] == "on_chat_model_stream":
            tokens.append(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            ends.append(event["data"]["output"])

    assert "".join(tokens) == "Echo: status report"
    assert len([t for t in tokens if t]) >= 4
    assert starts == 1 and len(ends) == 1
    assert ends[0].response_metadata["model_name"] == "smart"
    assert ends[0].response_metadata["fallback_from"] == ["primary"]
    assert primary.call_count == 2


def test_agent_retry_middleware_does_not_stack_retries_on_ours() -> None:
    """LangChain's ModelRetryMiddleware does not retry a request the manager already retried."""
    primary, backup = _outage(), _outage()
    manager = LLMManager(max_retries=1, clock=FakeClock())
    manager.register_model("primary", primary)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    agent = create_agent(
        ReliableChatModel(manager=manager),
        [get_weather],
        middleware=[ModelRetryMiddleware(max_retries=3, initial_delay=0.0, jitter=False)],
    )
    with pytest.raises(ReliableAPIError) as caught:
        agent.invoke({"messages": [HumanMessage("Weather in 'Oslo'?")]})
    assert isinstance(caught.value, ModelAPIError)
    assert (primary.call_count, backup.call_count) == (2, 2)
