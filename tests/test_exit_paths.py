"""Every way a request ends releases what it holds and is counted: cancellation, an abandoned
stream, KeyboardInterrupt, a failing classifier, and hooks that call back into the manager."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    BreakerState,
    ConfigurationError,
    LLMManager,
    ServerError,
)
from reliable_llm.events import BreakerTransition, Event
from reliable_llm.testing import FakeClock, ScriptedModel


def _tripped(clock: FakeClock, **kwargs: Any) -> tuple[LLMManager, ScriptedModel]:
    """A manager whose only model's breaker is open and due for a trial."""
    manager = LLMManager(
        clock=clock, random=lambda: 0.0, breaker=BreakerPolicy(1, 30.0), max_retries=0, **kwargs
    )
    model = ScriptedModel([ServerError("down")], default="healed " * 10, chunk_size=3)
    manager.register_model("m", model)
    with pytest.raises(AllModelsFailedError):
        manager.chat("trip", use_cache=False)
    clock.advance(30.0)
    return manager, model


def _state(manager: LLMManager) -> str:
    return str(manager.get_model_info("m")["breaker"]["state"])


def test_cancelled_trial_stream_frees_the_breaker(clock: FakeClock) -> None:
    """A half-open trial streamed by a task cancelled mid-answer does not wedge the breaker."""
    manager, _ = _tripped(clock)

    async def scenario() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            async for _chunk in manager.astream("hi", use_cache=False):
                first.set()
                await asyncio.Event().wait()  # the consumer stalls mid-answer

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):  # let the loop finalize the abandoned stream
            await asyncio.sleep(0)
        answer = await manager.achat("again", use_cache=False)
        assert answer.text.startswith("healed")

    asyncio.run(scenario())
    assert _state(manager) == "closed"


def test_keyboard_interrupt_in_a_sync_trial_stream_is_released_by_the_lease(
    clock: FakeClock,
) -> None:
    """A trial stream left suspended by KeyboardInterrupt blocks trials only for its lease."""
    manager, _ = _tripped(clock)
    stream = manager.stream("hi", use_cache=False)
    with pytest.raises(KeyboardInterrupt):
        for _chunk in stream:
            raise KeyboardInterrupt
    # The stream object is still referenced (not closed): its trial holds the slot...
    with pytest.raises(AllModelsFailedError, match="circuit_open"):
        manager.chat("meanwhile", use_cache=False)
    # ...but only for the lease (the per-attempt timeout), not forever.
    clock.advance(manager.timeouts.per_attempt)
    assert manager.chat("later", use_cache=False).text.startswith("healed")
    assert _state(manager) == "closed"
    stream.close()


def test_dropping_an_interrupted_stream_frees_the_trial_at_once(clock: FakeClock) -> None:
    """Once the interrupted stream object is dropped, the trial slot is free again."""
    manager, _ = _tripped(clock)
    stream = manager.stream("hi", use_cache=False)
    with pytest.raises(KeyboardInterrupt):
        for _chunk in stream:
            raise KeyboardInterrupt
    del stream, _chunk
    gc.collect()
    assert manager.chat("now", use_cache=False).text.startswith("healed")


@pytest.mark.parametrize("driver", ["stream", "astream"])
def test_abandoned_stream_is_counted(driver: str, manager: LLMManager) -> None:
    """A stream closed after its first chunk counts one cancelled request and attempt."""
    manager.register_model("m", ScriptedModel(default="a long answer", chunk_size=2))
    if driver == "stream":
        stream = manager.stream("hi")
        assert next(stream).text == "a "
        stream.close()
    else:

        async def abandon() -> None:
            astream = manager.astream("hi")
            assert (await anext(astream)).text == "a "
            await astream.aclose()

        asyncio.run(abandon())
    metrics = manager.get_metrics()
    assert metrics["total_requests"] == 1
    assert metrics["cancelled_requests"] == 1
    assert metrics["failed_requests"] == 0
    assert metrics["models"]["m"]["attempts"] == 1
    assert metrics["models"]["m"]["cancelled_attempts"] == 1
    # No outcome, so no success rate yet; one answered request then makes it 100%.
    assert metrics["success_rate"] is None
    manager.chat("another question", use_cache=False)
    assert manager.get_metrics()["success_rate"] == 1.0
    assert "cancelled 1, success rate 100%" in str(manager)
    assert len(manager.cache) == 0  # nothing abandoned is cached


def test_cancelled_achat_is_counted_and_frees_the_trial(clock: FakeClock) -> None:
    """A cancelled achat counts one cancelled request and attempt, and frees its trial."""
    manager = LLMManager(clock=clock, breaker=BreakerPolicy(1, 30.0), max_retries=0)
    hanging = asyncio.Event()

    async def model(prompt: str, **kwargs: Any) -> str:
        if prompt == "trip":
            raise ServerError("down")
        if prompt == "hang":
            hanging.set()
            await asyncio.Event().wait()
        return "ok"

    manager.register_model("m", model)

    async def scenario() -> None:
        with pytest.raises(AllModelsFailedError):
            await manager.achat("trip")
        clock.advance(30.0)
        task = asyncio.create_task(manager.achat("hang"))
        await hanging.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await manager.achat("fine")).text == "ok"

    asyncio.run(scenario())
    metrics = manager.get_metrics()
    assert metrics["cancelled_requests"] == 1
    assert metrics["models"]["m"]["cancelled_attempts"] == 1
    assert metrics["models"]["m"]["breaker_state"] == "closed"


def test_a_failing_classifier_is_a_clear_error_and_frees_the_trial(clock: FakeClock) -> None:
    """A classify_error that raises gives a ConfigurationError; the trial slot is freed."""
    manager = LLMManager(clock=clock, breaker=BreakerPolicy(1, 30.0), max_retries=0)

    def classify(exc: BaseException) -> None:
        raise RuntimeError("classifier bug")

    model = ScriptedModel([ServerError("down"), ValueError("odd")], default="ok")
    manager.register_model("m", model, classify_error=classify)
    with pytest.raises(AllModelsFailedError):
        manager.chat("trip")
    clock.advance(30.0)
    with pytest.raises(ConfigurationError, match="classify_error of model 'm' raised"):
        manager.chat("odd")
    assert manager.chat("fine").text == "ok"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_hook_may_reset_the_breaker_it_sees_open(asynchronous: bool, clock: FakeClock) -> None:
    """A hook resetting the breaker when it opens does not deadlock the request that tripped it."""
    manager = LLMManager(clock=clock, breaker=BreakerPolicy(1, 30.0), max_retries=0)
    manager.register_model("m", ScriptedModel([ServerError("down")], default="ok"))
    seen: list[Event] = []

    def hook(event: Event) -> None:
        if isinstance(event, BreakerTransition):
            seen.append(event)
            if event.new is BreakerState.OPEN:
                manager.reset_circuit_breaker("m")

    manager.add_hook(hook)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            if asynchronous:
                asyncio.run(manager.achat("hi"))
            else:
                manager.chat("hi")
        except AllModelsFailedError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the request deadlocked"
    assert len(outcome) == 1
    assert [(e.old, e.new) for e in seen] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.CLOSED),
    ]
    assert manager.chat("again").text == "ok"


def test_a_model_calling_back_with_the_same_prompt_does_not_deadlock() -> None:
    """A model that calls the manager with the very request it serves gets its own answer."""
    manager = LLMManager()
    manager.register_model("inner", lambda prompt, **kw: "inner answer")
    depth: list[int] = []

    def outer(prompt: str, **kwargs: Any) -> str:
        depth.append(1)
        if len(depth) == 1:
            return "outer saw " + manager.chat(prompt, model="outer").text
        return "nested"

    manager.register_model("outer", outer)
    outcome: list[str] = []
    thread = threading.Thread(
        target=lambda: outcome.append(manager.chat("same", model="outer").text), daemon=True
    )
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the re-entrant call deadlocked"
    assert outcome == ["outer saw nested"]


def test_an_async_model_calling_back_with_the_same_prompt_does_not_deadlock() -> None:
    """The async twin: a model awaiting the manager with its own request gets an answer."""
    manager = LLMManager()
    depth: list[int] = []

    async def outer(prompt: str, **kwargs: Any) -> str:
        depth.append(1)
        if len(depth) == 1:
            return "outer saw " + (await manager.achat(prompt)).text
        return "nested"

    manager.register_model("outer", outer)

    async def scenario() -> str:
        return (await asyncio.wait_for(manager.achat("same"), 10)).text

    assert asyncio.run(scenario()) == "outer saw nested"


def test_keyboard_interrupt_inside_a_model_call_is_counted_and_frees_the_trial(
    clock: FakeClock,
) -> None:
    """KeyboardInterrupt raised by a blocking model during a trial: it propagates, the request
    and attempt count as cancelled, and the next request gets the trial."""
    manager = LLMManager(clock=clock, breaker=BreakerPolicy(1, 30.0), max_retries=0)

    def model(prompt: str, **kwargs: Any) -> str:
        if prompt == "trip":
            raise ServerError("down")
        if prompt == "interrupt":
            raise KeyboardInterrupt
        return "ok"

    manager.register_model("m", model)
    with pytest.raises(AllModelsFailedError):
        manager.chat("trip")
    clock.advance(30.0)
    with pytest.raises(KeyboardInterrupt):
        manager.chat("interrupt")
    assert manager.chat("fine").text == "ok"
    metrics = manager.get_metrics()
    assert metrics["cancelled_requests"] == 1
    assert metrics["models"]["m"]["cancelled_attempts"] == 1
    assert metrics["models"]["m"]["breaker_state"] == "closed"
