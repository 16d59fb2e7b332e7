"""ReliableLLM's requests reach LlamaIndex instrumentation as one ReliableRequestEvent each,
carrying the request's reliability attributes inside the LLM call's span."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.llms.reliable import ReliableLLM, ReliableRequestEvent

from reliable_llm import ServerError
from reliable_llm.testing import FakeClock, ScriptedModel

EXPECTED = {
    "reliable_llm.outcome": "success",
    "reliable_llm.response.model": "backup",
    "reliable_llm.route": ["primary", "backup"],
    "reliable_llm.cache.hit": False,
    "reliable_llm.attempts": 3,
    "reliable_llm.retries": 1,
    "reliable_llm.fallback.models": ["primary"],
    "reliable_llm.fallback.reasons": ["retries_exhausted"],
}


def _llm(clock: FakeClock, backup: Any = "fine") -> ReliableLLM:
    return ReliableLLM(
        models={
            "primary": ScriptedModel(default=ServerError("down", status_code=503), clock=clock),
            "backup": ScriptedModel(default=backup, clock=clock),
        },
        fallbacks=["backup"],
        max_retries=1,
        clock=clock,
        model_metadata={"backup": {"prices": {"input": 1.0, "output": 2.0}}},
    )


def _messages() -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content="hi")]


def _call(llm: ReliableLLM, how: str) -> None:
    if how == "chat":
        llm.chat(_messages())
    elif how == "achat":
        asyncio.run(llm.achat(_messages()))
    elif how == "stream_chat":
        list(llm.stream_chat(_messages()))
    elif how == "complete":
        llm.complete("hi")
    else:

        async def consume() -> None:
            async for _response in await llm.astream_chat(_messages()):
                pass

        asyncio.run(consume())


@pytest.mark.parametrize("how", ["chat", "achat", "stream_chat", "astream_chat", "complete"])
def test_each_request_is_one_event_with_its_attributes(
    clock: FakeClock, recorder: Any, how: str
) -> None:
    """An event handler sees one ReliableRequestEvent per call: the model that answered, the
    models given up and why, attempts, retries, route, cache hit and cost; a call that is
    not a stream emits it in the span of its own start event (a stream's comes while it is
    consumed, after LlamaIndex has closed the call's span)."""
    _call(_llm(clock), how)
    (event,) = recorder.of("ReliableRequestEvent")
    assert isinstance(event, ReliableRequestEvent)
    assert event.model == "primary"
    assert {k: event.attributes[k] for k in EXPECTED} == EXPECTED
    assert event.attributes["reliable_llm.cost"] > 0
    if "stream" not in how:
        (start,) = recorder.of("LLMChatStartEvent") or recorder.of("LLMCompletionStartEvent")
        assert event.span_id == start.span_id is not None


def test_a_cache_hit_is_one_event(clock: FakeClock, recorder: Any) -> None:
    """A repeated request is one event saying it was a cache hit, with no attempts."""
    llm = _llm(clock)
    llm.complete("same")
    recorder.events.clear()
    llm.complete("same")
    (event,) = recorder.of("ReliableRequestEvent")
    assert event.attributes["reliable_llm.cache.hit"] is True
    assert event.attributes["reliable_llm.attempts"] == 0
    assert event.attributes["reliable_llm.response.model"] == "backup"


def test_a_failed_request_names_every_model_given_up(clock: FakeClock, recorder: Any) -> None:
    """When no model answers, the event says so and lists the models given up and why."""
    llm = _llm(clock, backup=ServerError("also down"))
    with pytest.raises(Exception, match="primary"):
        llm.chat(_messages())
    (event,) = recorder.of("ReliableRequestEvent")
    assert event.attributes["reliable_llm.outcome"] == "failure"
    assert event.attributes["reliable_llm.response.model"] is None
    assert event.attributes["reliable_llm.fallback.models"] == ["primary", "backup"]
    assert event.attributes["reliable_llm.fallback.reasons"] == ["retries_exhausted"] * 2
