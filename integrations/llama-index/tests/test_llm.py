"""ReliableLLM as a LlamaIndex LLM: chat, completion, streaming, metadata, events and errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.reliable import ReliableLLM
from pydantic import BaseModel

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    ConfigurationError,
    LLMManager,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    ToolCall,
    UnknownModelError,
)
from reliable_llm import (
    ChatResponse as CoreResponse,
)
from reliable_llm.testing import FakeClock, ScriptedModel, StreamBreak


def down() -> ServerError:
    return ServerError("primary is down", status_code=503)


def make_llm(clock: FakeClock, backup_text: str = "backup answer", **kwargs: Any) -> ReliableLLM:
    return ReliableLLM(
        models={
            "primary": ScriptedModel(default=down(), clock=clock),
            "backup": ScriptedModel(default=backup_text, clock=clock),
        },
        model="primary",
        fallbacks=["backup"],
        max_retries=1,
        clock=clock,
        **kwargs,
    )


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_chat_falls_back_and_says_which_model_answered(clock: FakeClock) -> None:
    """chat() answers from the fallback after the primary's retries; kwargs name the model."""
    llm = make_llm(clock)
    response = llm.chat(user("hi"))
    assert response.message.content == "backup answer"
    assert response.message.role == MessageRole.ASSISTANT
    assert response.additional_kwargs["model"] == "backup"
    assert response.additional_kwargs["fallbacks"] == 1
    assert response.additional_kwargs["fallback_from"] == ["primary"]
    attempts = response.additional_kwargs["attempts"]
    assert [(a["model"], a["error"]) for a in attempts] == [
        ("primary", "ServerError"),
        ("primary", "ServerError"),
        ("backup", None),
    ]
    assert llm.manager.get_model_info("primary")["attempts"] == 2


def test_complete_uses_the_manager_and_caches(clock: FakeClock) -> None:
    """complete() answers once upstream; the identical second call is a cache hit."""
    llm = make_llm(clock)
    first = llm.complete("what?")
    second = llm.complete("what?")
    assert first.text == second.text == "backup answer"
    assert second.additional_kwargs["cached"] is True
    metrics = llm.manager.get_metrics()
    assert metrics["cache"]["hits"] == 1
    assert metrics["models"]["backup"]["attempts"] == 1


def test_stream_chat_is_cumulative_with_incremental_deltas(clock: FakeClock) -> None:
    """stream_chat() content grows with each chunk and the deltas add up to it."""
    llm = make_llm(clock, backup_text="streamed from the backup")
    responses = list(llm.stream_chat(user("go")))
    contents = [r.message.content for r in responses]
    assert contents[-1] == "streamed from the backup"
    assert "".join(r.delta or "" for r in responses) == contents[-1]
    assert all(contents[i + 1].startswith(contents[i] or "") for i in range(len(contents) - 1))
    assert len([r for r in responses if r.delta]) > 1
    assert responses[-1].additional_kwargs["model"] == "backup"


def test_stream_complete_is_cumulative(clock: FakeClock) -> None:
    """stream_complete() text is cumulative and ends with the whole answer."""
    llm = make_llm(clock, backup_text="complete stream")
    responses = list(llm.stream_complete("go"))
    assert responses[-1].text == "complete stream"
    assert "".join(r.delta or "" for r in responses) == "complete stream"


async def test_async_twins_answer_from_the_fallback(clock: FakeClock) -> None:
    """achat, acomplete, astream_chat and astream_complete all fall back to the backup."""
    llm = make_llm(clock, backup_text="async answer", use_cache=False)
    assert (await llm.achat(user("a"))).message.content == "async answer"
    assert (await llm.acomplete("b")).text == "async answer"
    chat_parts = [r async for r in await llm.astream_chat(user("c"))]
    assert chat_parts[-1].message.content == "async answer"
    assert "".join(r.delta or "" for r in chat_parts) == "async answer"
    text_parts = [r async for r in await llm.astream_complete("d")]
    assert text_parts[-1].text == "async answer"


async def test_async_calls_do_not_block_the_event_loop() -> None:
    """Two concurrent achat() calls on a model with real latency overlap in time."""
    model = ScriptedModel(default="slow", latency=0.05)
    llm = ReliableLLM(models={"m": model}, enable_caching=False)
    started = time.perf_counter()
    results = await asyncio.gather(llm.achat(user("1")), llm.achat(user("2")))
    elapsed = time.perf_counter() - started
    assert [r.message.content for r in results] == ["slow", "slow"]
    assert elapsed < 0.095


def test_one_llm_event_per_logical_call(clock: FakeClock, recorder: Any) -> None:
    """Each call, streamed or not, is one LLM call for LlamaIndex despite retries and fallback."""
    llm = make_llm(clock)
    llm.complete("hello")
    assert len(recorder.of("LLMCompletionStartEvent")) == 1
    assert len(recorder.of("LLMCompletionEndEvent")) == 1
    assert recorder.of("LLMChatStartEvent") == []
    llm.chat(user("hello again"))
    assert len(recorder.of("LLMChatStartEvent")) == 1
    assert len(recorder.of("LLMChatEndEvent")) == 1
    list(llm.stream_chat(user("and streaming")))
    assert len(recorder.of("LLMChatStartEvent")) == 2
    assert len(recorder.of("LLMChatEndEvent")) == 2
    assert len(recorder.of("LLMChatInProgressEvent")) > 1
    list(llm.stream_complete("streamed completion"))
    assert len(recorder.of("LLMCompletionStartEvent")) == 2
    assert len(recorder.of("LLMChatStartEvent")) == 2


def test_retries_fallbacks_and_breaker_are_instrumentation_events(
    clock: FakeClock, recorder: Any
) -> None:
    """Retry, fallback and breaker-open events reach LlamaIndex handlers inside the LLM span."""
    llm = ReliableLLM(
        models={
            "primary": ScriptedModel(default=down(), clock=clock),
            "backup": ScriptedModel(default="ok", clock=clock),
        },
        fallbacks=["backup"],
        max_retries=1,
        breaker=BreakerPolicy(failure_threshold=2),
        clock=clock,
    )
    llm.chat(user("x"))
    (retry,) = recorder.of("ReliableRetryEvent")
    assert (retry.model, retry.attempt, retry.error) == ("primary", 1, "ServerError")
    (fallback,) = recorder.of("ReliableFallbackEvent")
    assert (fallback.from_model, fallback.to_model) == ("primary", "backup")
    assert fallback.reason == "circuit_opened"
    (transition,) = recorder.of("ReliableBreakerTransitionEvent")
    assert (transition.model, transition.old_state, transition.new_state) == (
        "primary",
        "closed",
        "open",
    )
    (start,) = recorder.of("LLMChatStartEvent")
    assert retry.span_id == fallback.span_id == start.span_id is not None
    assert retry.model_dump()["class_name"] == "ReliableRetryEvent"


def test_cache_hit_is_an_instrumentation_event(clock: FakeClock, recorder: Any) -> None:
    """A cached answer emits ReliableCacheHitEvent for the requested model."""
    llm = make_llm(clock)
    llm.complete("same")
    assert recorder.of("ReliableCacheHitEvent") == []
    llm.complete("same")
    (hit,) = recorder.of("ReliableCacheHitEvent")
    assert hit.model == "primary"


def test_bridge_is_installed_once_per_manager(clock: FakeClock, recorder: Any) -> None:
    """Two ReliableLLMs on one manager do not duplicate the bridged events."""
    manager = LLMManager(max_retries=1, clock=clock)
    manager.register_model("primary", ScriptedModel(default=down(), clock=clock))
    manager.register_model("backup", ScriptedModel(default="ok", clock=clock))
    manager.set_fallback_chain(["backup"])
    ReliableLLM(manager=manager)
    llm = ReliableLLM(manager=manager)
    llm.complete("x")
    assert len(recorder.of("ReliableFallbackEvent")) == 1


def test_all_models_failing_raises_typed_error_with_cause(clock: FakeClock) -> None:
    """When every model fails, chat() raises AllModelsFailedError carrying each cause."""
    original = RateLimitError("slow down", status_code=429)
    llm = ReliableLLM(
        models={"only": ScriptedModel(default=original, clock=clock)}, max_retries=1, clock=clock
    )
    with pytest.raises(AllModelsFailedError) as info:
        llm.chat(user("x"))
    assert info.value.__cause__ is original
    (failure,) = info.value.failures
    assert failure.model == "only"
    assert len(failure.errors) == 2


def test_stream_interruption_surfaces_partial_text(clock: FakeClock) -> None:
    """A stream broken mid-answer raises StreamInterruptedError after the partial text."""
    broken = ScriptedModel([StreamBreak("partial text", ServerError("dropped"))], clock=clock)
    llm = ReliableLLM(models={"m": broken}, clock=clock)
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for response in llm.stream_chat(user("x")):
            seen.append(response.message.content or "")
    assert seen[-1] == "partial text" == info.value.partial_text
    assert isinstance(info.value.__cause__, ServerError)


def test_metadata_comes_from_the_registered_model(clock: FakeClock) -> None:
    """metadata reports the active model's context window, output size and tool support."""
    llm = ReliableLLM(
        models={"big": ScriptedModel(), "small": ScriptedModel()},
        model_metadata={
            "big": {"context_window": 128_000, "max_output_tokens": 4096, "model_name": "gpt-x"},
            "small": {"context_window": 8000, "function_calling": False},
        },
        model="big",
        fallbacks=["small"],
    )
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (128_000, 4096, "gpt-x")
    assert meta.is_chat_model and meta.is_function_calling_model
    llm.manager.set_active_model("small")
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (8000, 256, "small")
    assert not meta.is_function_calling_model


def test_per_call_model_overrides_the_managers_route(clock: FakeClock) -> None:
    """ReliableLLM(manager=..., model=...) tries that model first, leaving the manager as is."""
    manager = LLMManager(clock=clock)
    manager.register_model("a", ScriptedModel(default="from a"), {"context_window": 1000})
    manager.register_model("b", ScriptedModel(default="from b"), {"context_window": 2000})
    llm = ReliableLLM(manager=manager, model="b")
    assert llm.complete("x").text == "from b"
    assert llm.metadata.context_window == 2000
    assert manager.active_model == "a"
    assert ReliableLLM(manager=manager).complete("x").text == "from a"


def test_metadata_follows_a_re_registered_model(clock: FakeClock) -> None:
    """Replacing a model with new metadata changes `metadata` and the instrumentation payload."""
    manager = LLMManager(clock=clock)
    manager.register_model("a", ScriptedModel(), {"context_window": 1000})
    llm = ReliableLLM(manager=manager)
    assert (llm.metadata.context_window, llm.to_payload()["context_window"]) == (1000, 1000)
    manager.register_model("a", ScriptedModel(), {"context_window": 3000}, replace=True)
    assert (llm.metadata.context_window, llm.to_payload()["context_window"]) == (3000, 3000)


def test_configuration_errors_are_clear(clock: FakeClock) -> None:
    """Conflicting or unknown construction arguments raise typed configuration errors."""
    manager = LLMManager(clock=clock)
    manager.register_model("a", ScriptedModel())
    with pytest.raises(ConfigurationError, match="either manager"):
        ReliableLLM()
    with pytest.raises(ConfigurationError, match="either manager"):
        ReliableLLM(manager=manager, models={"b": ScriptedModel()})
    with pytest.raises(ConfigurationError, match="max_retries"):
        ReliableLLM(manager=manager, max_retries=2)
    with pytest.raises(UnknownModelError):
        ReliableLLM(manager=manager, model="missing")
    with pytest.raises(UnknownModelError):
        ReliableLLM(models={"a": ScriptedModel()}, fallbacks=["missing"])


def test_messages_that_cannot_be_sent_are_rejected(clock: FakeClock) -> None:
    """A block no provider takes or a tool result without its call id raises
    ConfigurationError."""
    llm = make_llm(clock)
    video = ChatMessage(role=MessageRole.USER, blocks=[VideoBlock(url="https://x.test/a.mp4")])
    with pytest.raises(ConfigurationError, match="VideoBlock"):
        llm.chat([video])
    with pytest.raises(ConfigurationError, match="tool_call_id"):
        llm.chat([ChatMessage(role=MessageRole.TOOL, content="42")])


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _mul(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


def test_chat_with_tools_sends_schemas_and_returns_tool_call_blocks(clock: FakeClock) -> None:
    """chat_with_tools offers JSON schemas and returns the model's calls as ToolCallBlocks."""
    calls = (ToolCall("c1", "_add", '{"a": 1, "b": 2}'), ToolCall("c2", "_mul", '{"a": 3}'))
    model = ScriptedModel([CoreResponse(tool_calls=calls, finish_reason="tool_calls")])
    llm = ReliableLLM(models={"m": model}, clock=clock)
    tools = [FunctionTool.from_defaults(fn=_add), FunctionTool.from_defaults(fn=_mul)]
    response = llm.chat_with_tools(
        tools, user_msg="add", tool_required=True, allow_parallel_tool_calls=True
    )
    request = model.calls[0]
    assert [t.name for t in request.tools] == ["_add", "_mul"]
    assert request.tools[0].parameters["required"] == ["a", "b"]
    assert request.tool_choice == "required"
    blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in blocks] == [
        ("c1", "_add", {"a": 1, "b": 2}),
        ("c2", "_mul", {"a": 3}),
    ]
    selections = llm.get_tool_calls_from_response(response)
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in selections] == [
        ("c1", "_add", {"a": 1, "b": 2}),
        ("c2", "_mul", {"a": 3}),
    ]


def test_single_tool_call_unless_parallel_allowed(clock: FakeClock) -> None:
    """Without allow_parallel_tool_calls only the first requested call is kept."""
    calls = (ToolCall("c1", "_add", "{}"), ToolCall("c2", "_mul", "{}"))
    model = ScriptedModel(default=CoreResponse(tool_calls=calls, finish_reason="tool_calls"))
    llm = ReliableLLM(models={"m": model}, clock=clock, enable_caching=False)
    tools = [FunctionTool.from_defaults(fn=_add), FunctionTool.from_defaults(fn=_mul)]
    response = llm.chat_with_tools(tools, user_msg="go")
    assert [s.tool_id for s in llm.get_tool_calls_from_response(response)] == ["c1"]


def test_tool_calls_are_read_from_blocks_or_legacy_kwargs(clock: FakeClock) -> None:
    """get_tool_calls_from_response reads ToolCallBlocks and OpenAI-style additional_kwargs."""
    llm = make_llm(clock)
    legacy = ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT,
            content="",
            additional_kwargs={
                "tool_calls": [
                    {"id": "x1", "function": {"name": "_add", "arguments": '{"a": 1, "b": 2}'}}
                ]
            },
        )
    )
    (selection,) = llm.get_tool_calls_from_response(legacy)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == (
        "x1",
        "_add",
        {"a": 1, "b": 2},
    )
    empty = ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content="no tools"))
    assert llm.get_tool_calls_from_response(empty, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="0 tool calls"):
        llm.get_tool_calls_from_response(empty)


def test_tool_history_round_trips_to_the_model(clock: FakeClock) -> None:
    """An assistant tool call and its tool result reach the model with matching ids."""
    model = ScriptedModel(default="done")
    llm = ReliableLLM(models={"m": model}, clock=clock)
    history = [
        ChatMessage(role=MessageRole.USER, content="add"),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[ToolCallBlock(tool_call_id="c1", tool_name="_add", tool_kwargs={"a": 1})],
        ),
        ChatMessage(role=MessageRole.TOOL, content="3", additional_kwargs={"tool_call_id": "c1"}),
    ]
    llm.chat(history)
    assistant, tool = model.calls[0].messages[1:]
    assert assistant.tool_calls == (ToolCall("c1", "_add", '{"a": 1}'),)
    assert (tool.role, tool.content, tool.tool_call_id) == ("tool", "3", "c1")


def test_streamed_tool_calls_arrive_as_blocks(clock: FakeClock) -> None:
    """A streamed answer with tool calls ends with complete ToolCallBlocks."""
    calls = (ToolCall("c1", "_add", '{"a": 1, "b": 2}'),)
    model = ScriptedModel([CoreResponse(text="calling", tool_calls=calls)])
    llm = ReliableLLM(models={"m": model}, clock=clock)
    responses = list(llm.stream_chat(user("go")))
    (selection,) = llm.get_tool_calls_from_response(responses[-1])
    assert (selection.tool_id, selection.tool_kwargs) == ("c1", {"a": 1, "b": 2})
    assert responses[-1].message.content == "calling"


class City(BaseModel):
    """A structured output."""

    name: str
    country: str


def test_structured_predict_uses_a_required_tool_call(clock: FakeClock) -> None:
    """structured_predict forces the output-class tool and parses the model's call into it."""
    call = ToolCall("c1", "City", '{"name": "Paris", "country": "France"}')
    model = ScriptedModel([CoreResponse(tool_calls=(call,), finish_reason="tool_calls")])
    llm = ReliableLLM(models={"m": model}, clock=clock)
    city = llm.structured_predict(City, PromptTemplate("Capital of {c}?"), c="France")
    assert city == City(name="Paris", country="France")
    (request,) = model.calls
    assert [t.name for t in request.tools] == ["City"]
    assert request.tool_choice == "required"
