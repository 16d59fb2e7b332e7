"""Bulkheads: at most ``max_concurrent_calls`` calls in flight per deployment, from threads and
asyncio tasks; calls beyond it go elsewhere or wait; every exit path gives the slot back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import pytest

from reliable_llm import (
    AllModelsFailedError,
    CallableProvider,
    Deployment,
    FailureReason,
    LLMManager,
    LocalRateLimitError,
    ServerError,
    TimeoutPolicy,
)
from reliable_llm._bulkhead import Bulkhead
from reliable_llm._clock import SystemClock
from reliable_llm.testing import FakeClock, ScriptedModel

_REAL = SystemClock()


class _Tracker:
    """Counts calls in flight per deployment and remembers the highest count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.calls = 0

    def enter(self, name: str) -> None:
        with self.lock:
            self.now[name] += 1
            self.calls += 1
            self.peak[name] = max(self.peak[name], self.now[name])

    def leave(self, name: str) -> None:
        with self.lock:
            self.now[name] -= 1


def _in_flight(manager: LLMManager, name: str) -> int:
    return int(manager.get_model_info(name)["bulkhead"]["in_flight"])


def test_the_maximum_holds_under_1000_asyncio_tasks(clock: FakeClock) -> None:
    """1,000 tasks over two deployments of max 5: never more than 5 in flight on either."""
    tracker = _Tracker()

    def deployment(name: str) -> Deployment:
        async def call(prompt: str, **kwargs: Any) -> str:
            tracker.enter(name)
            try:
                for _ in range(3):
                    await asyncio.sleep(0)  # let the other tasks pile up
            finally:
                tracker.leave(name)
            return name

        return Deployment(call, name=name, max_concurrent_calls=5)

    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model("g", [deployment("a"), deployment("b")])

    async def run() -> list[str]:
        return await asyncio.gather(
            *(manager.agenerate(f"q{i}", timeout=10**6) for i in range(1000))
        )

    answers = asyncio.run(run())
    assert len(answers) == 1000 and tracker.calls == 1000
    assert tracker.peak == {"a": 5, "b": 5}  # reached, never exceeded
    assert manager.get_model_info("g[a]")["bulkhead"]["peak"] == 5
    assert _in_flight(manager, "g[a]") == _in_flight(manager, "g[b]") == 0
    assert manager.get_metrics()["successful_requests"] == 1000


def test_the_maximum_holds_under_threads(clock: FakeClock) -> None:
    """32 threads x 20 calls on one deployment of max 3: never more than 3 in flight."""
    tracker = _Tracker()

    def call(prompt: str, **kwargs: Any) -> str:
        tracker.enter("a")
        try:
            time.sleep(0)  # give up the GIL so other threads pile up
        finally:
            tracker.leave("a")
        return "ok"

    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    provider = CallableProvider(call, enforces_timeout=True)
    manager.register_model("g", [Deployment(provider, max_concurrent_calls=3)])
    start = threading.Barrier(32)
    errors: list[BaseException] = []

    def caller() -> None:
        start.wait()
        for i in range(20):
            try:
                manager.generate(f"{threading.get_ident()}-{i}", timeout=10**6)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and tracker.calls == 640
    assert tracker.peak["a"] <= 3
    assert _in_flight(manager, "g[0]") == 0


def test_a_call_beyond_the_maximum_goes_to_a_sibling() -> None:
    """Deployment 0 (max 1) busy: the next request is served by deployment 1 at once."""
    release = asyncio.Event()

    async def slow(prompt: str, **kwargs: Any) -> str:
        await release.wait()
        return "slow"

    async def fast(prompt: str, **kwargs: Any) -> str:
        return "fast"

    async def scenario() -> tuple[str, str, list[FailureReason]]:
        manager = LLMManager(random=lambda: 0.0, enable_caching=False)
        manager.register_model("g", [Deployment(slow, max_concurrent_calls=1), Deployment(fast)])
        first = asyncio.create_task(manager.achat("one"))
        for _ in range(5):
            await asyncio.sleep(0)
        second = await manager.achat("two")
        release.set()
        return (await first).text, second.text, [a.model for a in second.attempts]

    first, second, attempts = asyncio.run(scenario())
    assert (first, second) == ("slow", "fast")
    assert attempts == ["g[1]"]  # the full deployment was skipped without an attempt


def test_the_last_deployment_waits_for_a_slot_within_the_deadline() -> None:
    """max 1 and nothing else: a second call waits for the first to finish, then runs."""
    release = asyncio.Event()

    async def model(prompt: str, **kwargs: Any) -> str:
        if prompt == "first":
            await release.wait()
        return prompt

    async def scenario() -> tuple[str, str]:
        manager = LLMManager(enable_caching=False)
        manager.register_model("g", [Deployment(model, max_concurrent_calls=1)])
        first = asyncio.create_task(manager.agenerate("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(manager.agenerate("second", timeout=5))
        for _ in range(20):  # the second is queued at the full bulkhead meanwhile
            await asyncio.sleep(0)
        assert not second.done()
        release.set()
        return await first, await second

    assert asyncio.run(scenario()) == ("first", "second")


def test_a_full_bulkhead_past_the_deadline_is_a_typed_error() -> None:
    """max 1, held: a request whose deadline ends first fails with LocalRateLimitError."""
    release = threading.Event()

    def model(prompt: str, **kwargs: Any) -> str:
        release.wait(5)
        return prompt

    manager = LLMManager(enable_caching=False)
    manager.register_model(
        "g", [Deployment(CallableProvider(model, enforces_timeout=True), max_concurrent_calls=1)]
    )
    holder = threading.Thread(target=manager.generate, args=("hold",))
    holder.start()
    while _in_flight(manager, "g[0]") == 0:
        time.sleep(0.001)
    try:
        with pytest.raises(LocalRateLimitError) as caught:
            manager.generate("late", timeout=0.05)
    finally:
        release.set()
        holder.join()
    assert caught.value.limit == "max_concurrent_calls"
    assert caught.value.failures[-1].reason is FailureReason.BULKHEAD_FULL
    assert manager.get_model_info("g[0]")["breaker"]["failure_count"] == 0


# -- every exit path gives the slot back ----------------------------------------------------


def _gated(clock: FakeClock, model: Any, **kwargs: Any) -> LLMManager:
    manager = LLMManager(
        clock=clock, random=lambda: 0.0, enable_caching=False, max_retries=0, **kwargs
    )
    manager.register_model("g", [Deployment(model, max_concurrent_calls=1, rpm=1000)])
    return manager


@pytest.mark.parametrize("driver", ["sync", "async", "stream", "astream"])
@pytest.mark.parametrize("outcome", ["answer", "error", "timeout"])
def test_answers_errors_and_timeouts_give_the_slot_back(
    driver: str, outcome: str, clock: FakeClock
) -> None:
    """After an answer, a provider error or a per-attempt timeout, nothing stays in flight."""
    from drivers import ask_with

    step: Any = {"answer": "fine", "error": ServerError("down")}.get(outcome)
    model = ScriptedModel(default=step if step is not None else "late", clock=clock)
    if outcome == "timeout":
        model.latency = 100.0
    manager = _gated(clock, model, timeouts=TimeoutPolicy(total=30, per_attempt=10))
    if outcome == "answer":
        assert ask_with(driver, manager, "hi").text == "fine"
    else:
        with pytest.raises(AllModelsFailedError):
            ask_with(driver, manager, "hi")
    assert _in_flight(manager, "g[0]") == 0
    calls = model.call_count
    try:
        ask_with(driver, manager, "again", timeout=5)  # would wait, then fail, if still held
    except AllModelsFailedError as exc:
        assert not isinstance(exc, LocalRateLimitError)
    assert model.call_count == calls + 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_abandoned_stream_gives_the_slot_back(asynchronous: bool, clock: FakeClock) -> None:
    """A stream dropped after its first chunk releases its slot when it is closed."""
    manager = _gated(clock, ScriptedModel(default="a long answer " * 5, chunk_size=3))
    if asynchronous:

        async def run() -> None:
            stream = manager.astream("hi")
            async for _chunk in stream:
                assert _in_flight(manager, "g[0]") == 1
                break
            await stream.aclose()

        asyncio.run(run())
    else:
        stream = manager.stream("hi")
        for _chunk in stream:
            assert _in_flight(manager, "g[0]") == 1
            break
        stream.close()
    assert _in_flight(manager, "g[0]") == 0
    assert manager.get_metrics()["cancelled_requests"] == 1


def test_a_cancelled_task_gives_the_slot_back(clock: FakeClock) -> None:
    """Cancelling a task inside its model call frees the slot and counts the request."""
    started = asyncio.Event()

    async def hang(prompt: str, **kwargs: Any) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    manager = _gated(clock, hang)

    async def run() -> None:
        task = asyncio.create_task(manager.agenerate("hi"))
        await started.wait()
        assert _in_flight(manager, "g[0]") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert _in_flight(manager, "g[0]") == 0
    assert manager.get_metrics()["cancelled_requests"] == 1


@pytest.mark.parametrize("streaming", [False, True])
def test_keyboard_interrupt_in_the_model_gives_the_slot_back(
    streaming: bool, clock: FakeClock
) -> None:
    """A KeyboardInterrupt raised inside the model call still frees the slot."""
    manager = _gated(clock, ScriptedModel(default=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        if streaming:
            for _chunk in manager.stream("hi"):
                pass
        else:
            manager.chat("hi")
    assert _in_flight(manager, "g[0]") == 0
    assert manager.get_model_info("g[0]")["rate_limits"]["requests"] == 1


def test_a_blocked_thread_waits_for_a_slot_and_is_woken_when_it_frees() -> None:
    """A sync caller at a full bulkhead waits (not polls) and runs once the holder returns."""
    release = threading.Event()
    order: list[str] = []

    def model(prompt: str, **kwargs: Any) -> str:
        if prompt == "first":
            release.wait(5)
        order.append(prompt)
        return prompt

    manager = LLMManager(enable_caching=False)
    manager.register_model(
        "g", [Deployment(CallableProvider(model, enforces_timeout=True), max_concurrent_calls=1)]
    )
    holder = threading.Thread(target=manager.generate, args=("first",))
    holder.start()
    while _in_flight(manager, "g[0]") == 0:
        time.sleep(0.001)
    state = manager._registry.deployments["g[0]"].provider.state  # type: ignore[attr-defined]

    def release_once_queued() -> None:
        while not state.bulkhead._waiters:  # the second caller is waiting at the bulkhead
            time.sleep(0.001)
        release.set()

    threading.Thread(target=release_once_queued).start()
    assert manager.generate("second", timeout=5) == "second"
    holder.join()
    assert order == ["first", "second"]
    assert manager.get_model_info("g[0]")["bulkhead"]["peak"] == 1


@pytest.mark.parametrize("how", ["timeout", "interrupt", "cancel"])
def test_a_waiter_that_gives_up_passes_its_wake_up_on(how: str) -> None:
    """A waiter that times out, is interrupted or cancelled never swallows a freed slot."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    if how == "cancel":

        async def run() -> None:
            task = asyncio.create_task(bulkhead.await_slot(_REAL, time.monotonic() + 5))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(run())
    elif how == "interrupt":
        import signal

        previous = signal.signal(
            signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt)
        )
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            with pytest.raises(KeyboardInterrupt):
                bulkhead.wait(_REAL, time.monotonic() + 5)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:
        assert bulkhead.wait(_REAL, time.monotonic() + 0.005) is False
    woken: list[bool] = []
    waiter = threading.Thread(
        target=lambda: woken.append(bulkhead.wait(_REAL, time.monotonic() + 5))
    )
    waiter.start()
    while not bulkhead._waiters:
        time.sleep(0.001)
    bulkhead.release()  # must reach the live waiter, not the one that gave up
    waiter.join(5)
    assert woken == [True] and bulkhead.in_flight == 1


# -- waits on the injected clock --------------------------------------------------------------


def _queued(bulkhead: Bulkhead, count: int = 1) -> None:
    """Block (briefly, for real) until ``count`` callers wait at ``bulkhead``."""
    give_up = time.monotonic() + 5
    while len(bulkhead._waiters) < count:
        assert time.monotonic() < give_up, "the waiter never queued"
        time.sleep(0.001)


def test_a_thread_waiter_times_out_exactly_at_its_fake_deadline(clock: FakeClock) -> None:
    """On the fake clock a waiting thread gives up when time reaches its deadline, not before."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    woken: list[tuple[bool, float]] = []
    waiter = threading.Thread(
        target=lambda: woken.append((bulkhead.wait(clock, 5.0), clock.monotonic()))
    )
    waiter.start()
    _queued(bulkhead)
    clock.advance(4.999)
    waiter.join(0.05)
    assert waiter.is_alive() and woken == []  # 1 ms short of its deadline: still waiting
    clock.advance(0.001)
    waiter.join(5)
    assert woken == [(False, 5.0)]
    assert not bulkhead._waiters and bulkhead.in_flight == 1
    assert clock._alarms == {}  # its alarm is gone with it
    bulkhead.release()
    assert bulkhead.try_acquire()  # the slot it did not get is still there for others


def test_a_task_waiter_times_out_exactly_at_its_fake_deadline(clock: FakeClock) -> None:
    """On the fake clock a waiting task gives up when time reaches its deadline, not before."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()

    async def run() -> None:
        waiter = asyncio.create_task(bulkhead.await_slot(clock, 5.0))
        await asyncio.sleep(0)
        assert len(bulkhead._waiters) == 1
        clock.advance(4.999)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done()
        clock.advance(0.001)
        assert await waiter is False
        assert clock.monotonic() == 5.0

    asyncio.run(run())
    assert not bulkhead._waiters and clock._alarms == {}


def test_a_freed_slot_wakes_a_fake_clock_waiter_without_time_moving(clock: FakeClock) -> None:
    """A thread and a task waiting on the fake clock each run as soon as a slot is given back."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(bulkhead.wait(clock, 10**6)))
    waiter.start()
    _queued(bulkhead)
    bulkhead.release()
    waiter.join(5)
    assert got == [True] and bulkhead.in_flight == 1

    async def run() -> bool:
        task = asyncio.create_task(bulkhead.await_slot(clock, 10**6))
        await asyncio.sleep(0)
        assert not task.done()
        bulkhead.release()
        return await task

    assert asyncio.run(run()) is True and bulkhead.in_flight == 1
    assert clock.monotonic() == 0.0 and clock.sleeps == [] and clock._alarms == {}


def test_anyones_sleep_on_the_fake_clock_times_a_waiter_out(clock: FakeClock) -> None:
    """Time passed by a backoff sleep elsewhere counts against a waiter's deadline."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(bulkhead.wait(clock, 2.0)))
    waiter.start()
    _queued(bulkhead)
    clock.sleep(3.0)
    waiter.join(5)
    assert got == [False]


@pytest.mark.parametrize("how", ["deadline", "interrupt", "cancel"])
def test_a_fake_clock_waiter_that_gives_up_passes_its_wake_up_on(
    how: str, clock: FakeClock
) -> None:
    """On the fake clock too, a waiter that times out, is interrupted or cancelled leaves."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    if how == "cancel":

        async def run() -> None:
            task = asyncio.create_task(bulkhead.await_slot(clock, 10**6))
            await asyncio.sleep(0)
            assert len(bulkhead._waiters) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(run())
    elif how == "interrupt":
        import signal

        previous = signal.signal(
            signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt)
        )
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            with pytest.raises(KeyboardInterrupt):
                bulkhead.wait(clock, 10**6)  # no real bound: only the signal ends it
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:
        assert bulkhead.wait(clock, 0.0) is False  # a deadline already passed
    assert not bulkhead._waiters and clock._alarms == {}
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(bulkhead.wait(clock, 10**6)))
    waiter.start()
    _queued(bulkhead)
    bulkhead.release()  # must reach the live waiter
    waiter.join(5)
    assert woken == [True] and bulkhead.in_flight == 1


def test_a_task_cancelled_while_waiting_for_a_slot_leaves_the_queue(clock: FakeClock) -> None:
    """A request cancelled while queued at a full bulkhead takes no slot and blocks no one."""
    release = asyncio.Event()
    calls: list[str] = []

    async def model(prompt: str, **kwargs: Any) -> str:
        calls.append(prompt)
        if prompt == "hold":
            await release.wait()
        return prompt

    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model("g", [Deployment(model, max_concurrent_calls=1)])
    bulkhead = manager._registry.deployments["g[0]"].provider.state.bulkhead  # type: ignore[attr-defined]

    async def run() -> str:
        holder = asyncio.create_task(manager.agenerate("hold"))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(manager.agenerate("doomed", timeout=60))
        for _ in range(20):  # let it reach the bulkhead and queue there
            await asyncio.sleep(0)
        assert len(bulkhead._waiters) == 1
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert not bulkhead._waiters
        waiting = asyncio.create_task(manager.agenerate("next", timeout=60))
        for _ in range(20):  # let it reach the bulkhead and queue there
            await asyncio.sleep(0)
        assert len(bulkhead._waiters) == 1
        release.set()
        assert await holder == "hold"
        return await waiting

    assert asyncio.run(run()) == "next"
    assert calls == ["hold", "next"]
    assert _in_flight(manager, "g[0]") == 0 and clock._alarms == {}
    assert manager.get_metrics()["cancelled_requests"] == 1


def test_a_request_waits_for_a_slot_until_its_fake_deadline(driver: str, clock: FakeClock) -> None:
    """A request at a full bulkhead fails with LocalRateLimitError once fake time passes its
    deadline, and not before; no real time is slept (each driver)."""
    from drivers import ask_with

    release = threading.Event()

    def hold(prompt: str, **kwargs: Any) -> str:
        release.wait(10)
        return prompt

    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    provider = CallableProvider(hold, enforces_timeout=True)
    manager.register_model("g", [Deployment(provider, max_concurrent_calls=1)])
    bulkhead = manager._registry.deployments["g[0]"].provider.state.bulkhead  # type: ignore[attr-defined]
    holder = threading.Thread(target=manager.generate, args=("hold",))
    holder.start()
    _wait_until(lambda: bulkhead.in_flight == 1)
    outcome: list[BaseException | str] = []

    def late() -> None:
        try:
            outcome.append(ask_with(driver, manager, "late", timeout=8).text)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    waiter = threading.Thread(target=late)
    waiter.start()
    try:
        for _ in range(63):  # to 7.875 s, 1/8 s at a time: it keeps waiting
            _queued(bulkhead)
            clock.advance(0.125)
        time.sleep(0.02)
        assert outcome == [] and clock.monotonic() == 7.875
        _queued(bulkhead)
        advanced = time.monotonic()
        clock.advance(0.125)  # 8 s: its deadline
        waiter.join(5)
        ended = time.monotonic()
    finally:
        release.set()
        holder.join()
    assert ended - advanced < 1.0  # woken by the clock, not by a real-time wait of its own
    assert ended - started < 5
    [error] = outcome
    assert isinstance(error, LocalRateLimitError) and error.limit == "max_concurrent_calls"
    assert manager.get_model_info("g[0]")["breaker"]["failure_count"] == 0
    assert bulkhead.in_flight == 0 and not bulkhead._waiters and clock._alarms == {}


def _wait_until(condition: Any) -> None:
    give_up = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < give_up
        time.sleep(0.001)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_real_clock_waiter_gives_up_at_its_deadline(asynchronous: bool) -> None:
    """On the real clock a waiter returns False 50 ms after it started, not sooner or much later."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    started = time.monotonic()
    deadline = started + 0.05
    if asynchronous:
        got = asyncio.run(bulkhead.await_slot(_REAL, deadline))
    else:
        got = bulkhead.wait(_REAL, deadline)
    ended = time.monotonic()
    assert got is False and not bulkhead._waiters
    assert deadline <= ended < deadline + 1.0
