"""Streaming: transparent retry and fallback before the first chunk, typed errors after."""

from __future__ import annotations

import asyncio

import pytest

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    ChatResponse,
    LLMManager,
    ServerError,
    StreamAccumulator,
    StreamChunk,
    StreamInterruptedError,
    ToolCall,
    ToolCallAssembler,
    ToolCallDelta,
    Usage,
)
from reliable_llm.testing import FakeClock, ScriptedModel, StreamBreak


def _collect(manager: LLMManager, prompt: str, asynchronous: bool) -> list[object]:
    if not asynchronous:
        return list(manager.stream(prompt))

    async def run() -> list[object]:
        return [c async for c in manager.astream(prompt)]

    return asyncio.run(run())


@pytest.fixture(params=[False, True], ids=["stream", "astream"])
def asynchronous(request: pytest.FixtureRequest) -> bool:
    """Both streaming drivers."""
    return bool(request.param)


def test_failure_before_first_chunk_falls_back_transparently(
    manager: LLMManager, clock: FakeClock, asynchronous: bool
) -> None:
    """The caller sees only the fallback's chunks when the primary fails before streaming."""
    primary = ScriptedModel(default=ServerError("503"))
    manager.register_model("primary", primary)
    manager.register_model("backup", ScriptedModel(default="backup speaking"))
    manager.set_fallback_chain(["backup"])
    chunks = _collect(manager, "hi", asynchronous)
    assert "".join(c.text for c in chunks) == "backup speaking"  # type: ignore[attr-defined]
    assert {c.model for c in chunks} == {"backup"}  # type: ignore[attr-defined]
    assert primary.call_count == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_failure_after_first_chunk_raises_with_partial_text(
    manager: LLMManager, asynchronous: bool
) -> None:
    """After text reached the caller, a failure is not hidden by a fallback: it is raised."""
    backup = ScriptedModel(default="unused")
    manager.register_model(
        "primary", ScriptedModel([StreamBreak("The answer is 4", ServerError("reset"))])
    )
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    with pytest.raises(StreamInterruptedError) as caught:
        _collect(manager, "2+2?", asynchronous)
    assert caught.value.partial_text == "The answer is 4"
    assert caught.value.model == "primary"
    assert isinstance(caught.value.__cause__, ServerError)
    assert backup.call_count == 0
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 1
    assert manager.get_metrics()["failed_requests"] == 1


def test_stream_carries_usage_finish_reason_and_tool_calls(
    manager: LLMManager, asynchronous: bool
) -> None:
    """The last chunk carries finish reason and usage; tool calls arrive as deltas."""
    reply = ChatResponse(
        text="calling",
        tool_calls=(ToolCall("c1", "lookup", '{"q": "x"}'),),
        finish_reason="tool_calls",
        usage=Usage(7, 3),
    )
    manager.register_model("m", ScriptedModel([reply]))
    chunks = _collect(manager, "hi", asynchronous)
    last = chunks[-1]
    assert (last.finish_reason, last.usage) == ("tool_calls", Usage(7, 3))  # type: ignore[attr-defined]
    deltas = [d for c in chunks for d in c.tool_call_deltas]  # type: ignore[attr-defined]
    assert [(d.id, d.name, d.arguments) for d in deltas] == [("c1", "lookup", '{"q": "x"}')]
    assert manager.get_metrics()["tokens"]["total"] == 10


def test_all_models_failing_to_start_raises(manager: LLMManager, asynchronous: bool) -> None:
    """If no model yields a first chunk, the stream raises AllModelsFailedError."""
    manager.register_model("a", ScriptedModel(default=ServerError("down")))
    with pytest.raises(AllModelsFailedError):
        _collect(manager, "hi", asynchronous)


def test_abandoned_stream_frees_the_half_open_trial(clock: FakeClock) -> None:
    """A caller who stops reading a trial stream does not leave the breaker stuck."""
    manager = LLMManager(max_retries=0, clock=clock)
    primary = ScriptedModel([ServerError("down")], default="a long healthy answer")
    manager.register_model("primary", primary, breaker=BreakerPolicy(1, recovery_timeout=1))
    with pytest.raises(AllModelsFailedError):
        manager.chat("hi")
    clock.advance(1)
    stream = manager.stream("again")
    next(stream)
    stream.close()
    assert manager.chat("third").model == "primary"
    assert manager.get_model_info("primary")["breaker"]["state"] == "closed"


def test_assembler_starts_a_new_call_for_a_new_id_at_an_occupied_index() -> None:
    """Parallel calls that a server numbers alike stay apart, in the order they started."""
    calls = ToolCallAssembler()
    assert calls.add(0, "call_a", "get_weather", "") == 0
    calls.add(0, None, None, '{"city": "Paris"}')
    assert calls.add(0, "call_b", "get_time", "") == 1
    calls.add(0, None, None, '{"tz": "CET"}')
    assert calls.calls() == (
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", '{"tz": "CET"}'),
    )


def test_assembler_replaces_fields_repeated_whole() -> None:
    """A name sent again, or a whole arguments object sent again, is not appended."""
    calls = ToolCallAssembler()
    for _ in range(3):
        calls.add(0, "c1", "get_weather", '{"city": "Oslo"}')
    assert calls.calls() == (ToolCall("c1", "get_weather", '{"city": "Oslo"}'),)


def test_assembler_gives_a_missing_index_the_next_free_slot() -> None:
    """Calls without an index (Gemini-style) get slots 0, 1, ...; ids route later fragments."""
    calls = ToolCallAssembler()
    assert calls.add(None, "x", "f", '{"a": 1}') == 0
    assert calls.add(None, "y", "g", "{") == 1
    assert calls.add(None, None, None, '"b": 2}') == 1  # a bare fragment continues the latest
    assert calls.add(None, "x", None, "") == 0
    assert calls.calls() == (ToolCall("x", "f", '{"a": 1}'), ToolCall("y", "g", '{"b": 2}'))


def test_assembler_joins_name_and_argument_fragments() -> None:
    """Names and arguments sent in fragments are joined; empty arguments read as {}."""
    calls = ToolCallAssembler()
    calls.add(1, "id1", "get_", "")
    calls.add(1, None, "weather", '{"q":')
    calls.add(1, None, None, ' "x"}')
    calls.add(2, "id2", "noop", "")
    assert calls.calls() == (ToolCall("id1", "get_weather", '{"q": "x"}'), ToolCall("id2", "noop"))


def test_accumulator_uses_the_assembler() -> None:
    """StreamAccumulator folds deltas with the same rules: index-0 parallel calls stay apart."""
    acc = StreamAccumulator()
    acc.add(StreamChunk(tool_call_deltas=(ToolCallDelta(0, "a", "f", "{}"),)))
    acc.add(StreamChunk(tool_call_deltas=(ToolCallDelta(0, "b", "g", "{}"),)))
    acc.add(StreamChunk(finish_reason="tool_calls"))
    assert [c.name for c in acc.response().tool_calls] == ["f", "g"]


def test_an_exhausted_stream_carries_its_whole_response(manager: LLMManager) -> None:
    """stream.response holds what chat() would return: text, model, attempts, fallbacks."""
    manager.register_model("primary", ScriptedModel([ServerError("down")] * 4))
    manager.register_model("backup", ScriptedModel(default="from the backup", chunk_size=3))
    manager.set_fallback_chain(["backup"])
    stream = manager.stream("hi")
    assert stream.response is None
    text = "".join(chunk.text for chunk in stream)
    response = stream.response
    assert response is not None
    assert (response.text, response.model) == (text, "backup")
    assert response.fallback_from == ("primary",)
    assert [(a.model, a.succeeded) for a in response.attempts] == [
        *[("primary", False)] * 4,
        ("backup", True),
    ]
    replay = manager.stream("hi")
    assert "".join(chunk.text for chunk in replay) == text
    assert replay.response is not None and replay.response.cached
