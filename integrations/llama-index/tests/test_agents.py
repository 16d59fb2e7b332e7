"""LlamaIndex agents on ReliableLLM: a FunctionAgent tool loop and a text-only ReActAgent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ReActAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.reliable import ReliableLLM

from reliable_llm import (
    BreakerPolicy,
    ChatRequest,
    ChatResponse,
    Provider,
    ServerError,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
)
from reliable_llm.testing import FakeClock, ScriptedModel

# llama-index-workflows discovers steps with inspect.getmembers(), which reads the agent's
# deprecated pydantic attributes (`__fields__`, `model_computed_fields` on the instance...).
# Only pydantic deprecations raised from inside the inspect module are ignored.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecationWarning:inspect"
)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]


class ToolPlanModel(Provider):
    """A deterministic tool-calling model: add(2, 3), then multiply(sum, 4), then answer.

    It decides from the request alone: the number of tool results present says which step
    comes next. Streaming splits text and tool-call arguments over several chunks, as real
    providers do.
    """

    provider_name = "tool-plan"

    def __init__(self) -> None:
        self.calls: list[ChatRequest] = []

    def _decide(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(request)
        results = [m.content for m in request.messages if m.role == "tool"]
        if request.tools and not results:
            call = ToolCall("call-1", "add", json.dumps({"a": 2, "b": 3}))
        elif request.tools and len(results) == 1:
            call = ToolCall("call-2", "multiply", json.dumps({"a": int(results[0]), "b": 4}))
        else:
            return ChatResponse(text=f"The result is {results[-1]}.")
        return ChatResponse(text="Calling a tool.", tool_calls=(call,), finish_reason="tool_calls")

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        return self._decide(request)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        return self._decide(request)

    @staticmethod
    def _chunks(response: ChatResponse) -> Iterator[StreamChunk]:
        for i in range(0, len(response.text), 6):
            yield StreamChunk(text=response.text[i : i + 6])
        for index, call in enumerate(response.tool_calls):
            half = len(call.arguments) // 2
            yield StreamChunk(tool_call_deltas=(ToolCallDelta(index, call.id, call.name),))
            yield StreamChunk(
                tool_call_deltas=(ToolCallDelta(index, arguments=call.arguments[:half]),)
            )
            yield StreamChunk(
                tool_call_deltas=(ToolCallDelta(index, arguments=call.arguments[half:]),)
            )
        yield StreamChunk(finish_reason=response.finish_reason)

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        return self._chunks(self._decide(request))

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        for chunk in self._chunks(self._decide(request)):
            yield chunk


def primary_down() -> ScriptedModel:
    return ScriptedModel(default=ServerError("primary down", status_code=503))


def build_llm(primary: Provider, backup: Provider, clock: FakeClock, **meta: Any) -> ReliableLLM:
    return ReliableLLM(
        models={"primary": primary, "backup": backup},
        model_metadata={"backup": meta} if meta else None,
        model="primary",
        fallbacks=["backup"],
        max_retries=1,
        breaker=BreakerPolicy(failure_threshold=2),
        clock=clock,
    )


@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_completes_tool_loop_while_breaker_opens(
    streaming: bool, clock: FakeClock, recorder: Any
) -> None:
    """A FunctionAgent calls add then multiply and answers, served by the fallback model."""
    primary, backup = primary_down(), ToolPlanModel()
    llm = build_llm(primary, backup, clock)
    agent = FunctionAgent(tools=TOOLS, llm=llm, streaming=streaming)
    handler = agent.run(user_msg="What is (2 + 3) * 4?")
    deltas = [ev.delta async for ev in handler.stream_events() if isinstance(ev, AgentStream)]
    result = await handler
    assert str(result) == "The result is 20."
    assert [t.tool_name for t in result.tool_calls] == ["add", "multiply"]
    assert [t.tool_output.content for t in result.tool_calls] == ["5", "20"]
    assert len(backup.calls) == 3
    assert primary.call_count == 2
    assert llm.manager.get_model_info("primary")["breaker"]["state"] == "open"
    reasons = [e.reason for e in recorder.of("ReliableFallbackEvent")]
    assert reasons == ["circuit_opened", "circuit_open", "circuit_open"]
    final = backup.calls[-1].messages
    assert [(m.role, m.tool_call_id) for m in final if m.role == "tool"] == [
        ("tool", "call-1"),
        ("tool", "call-2"),
    ]
    assert [c.id for m in final for c in m.tool_calls] == ["call-1", "call-2"]
    if streaming:
        assert "".join(deltas).endswith("The result is 20.")
        assert len(deltas) > 3


REACT_STEPS = [
    'Thought: I need to add the numbers.\nAction: add\nAction Input: {"a": 2, "b": 3}',
    "Thought: I can answer without using any more tools.\nAnswer: The sum is 5.",
]


# llama-index-core's ReActAgent.take_step asks ctx.is_running, which the installed
# llama-index-workflows deprecates when called inside a step.
@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")
@pytest.mark.parametrize("streaming", [False, True])
async def test_react_agent_completes_with_a_text_only_model(
    streaming: bool, clock: FakeClock
) -> None:
    """A ReActAgent runs Thought/Action/Observation/Answer on a text-only fallback model."""
    backup = ScriptedModel(REACT_STEPS)
    llm = build_llm(primary_down(), backup, clock, function_calling=False)
    llm.manager.set_active_model("backup")
    assert not llm.metadata.is_function_calling_model
    llm.manager.set_active_model("primary")
    agent = ReActAgent(tools=TOOLS, llm=llm, streaming=streaming)
    result = await agent.run(user_msg="What is 2 + 3?")
    assert str(result) == "The sum is 5."
    assert [t.tool_name for t in result.tool_calls] == ["add"]
    assert backup.call_count == 2
    second_prompt = backup.calls[1].messages
    assert any("Observation: 5" in m.content for m in second_prompt)
    assert all(not request.tools for request in backup.calls)
