"""A full deployment group's waiters wait on the GROUP: the first slot given back on any of its
deployments (or the soonest rate-limit window of any) serves the longest waiter, within its
deadline on the injected clock; every way out of the wait leaves the queue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from reliable_llm import (
    CallableProvider,
    Deployment,
    FailureReason,
    LLMManager,
    LocalRateLimitError,
)
from reliable_llm._bulkhead import Bulkhead
from reliable_llm._groupwait import GroupQueue
from reliable_llm.testing import FakeClock

LATENCY = 0.3  # seconds each model call takes, on the fake clock
STRATEGIES = ["weighted", "least_in_flight", "lowest_latency", "lowest_usage"]


class _Calls:
    """Model calls parked on the fake clock: how many, per deployment, and the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parked = 0
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    def enter(self, name: str) -> None:
        with self.lock:
            self.now[name] += 1
            self.peak[name] = max(self.peak[name], self.now[name])

    def park(self, delta: int) -> None:
        with self.lock:
            self.parked += delta

    def leave(self, name: str) -> None:
        with self.lock:
            self.now[name] -= 1


def _queue(manager: LLMManager) -> GroupQueue:
    state = manager._registry.deployments["g[a]"].provider.state  # type: ignore[attr-defined]
    queue = state.bulkhead.group
    assert queue is not None
    return queue  # type: ignore[no-any-return]


def _bulkhead(manager: LLMManager, name: str) -> Bulkhead:
    return manager._registry.deployments[name].provider.state.bulkhead  # type: ignore[attr-defined,no-any-return]


def _until(condition: Callable[[], bool]) -> None:
    """Block (briefly, for real) until ``condition()`` holds."""
    give_up = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < give_up, "never happened"
        time.sleep(0.0005)


def _sync_group(clock: FakeClock, calls: _Calls, strategy: str, limit: int = 2) -> LLMManager:
    def deployment(name: str) -> Deployment:
        def call(prompt: str, **kwargs: Any) -> str:
            calls.enter(name)
            try:
                done = threading.Event()

                def ring() -> None:  # in the thread moving time: unparked at once
                    calls.park(-1)
                    done.set()

                calls.park(1)
                clock.call_at(clock.monotonic() + LATENCY, ring)
                assert done.wait(5)
            finally:
                calls.leave(name)
            return name

        provider = CallableProvider(call, enforces_timeout=True)
        return Deployment(provider, name=name, max_concurrent_calls=limit)

    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model("g", [deployment("a"), deployment("b")], strategy=strategy)
    return manager


def _async_group(clock: FakeClock, calls: _Calls, strategy: str, limit: int = 2) -> LLMManager:
    def deployment(name: str) -> Deployment:
        async def call(prompt: str, **kwargs: Any) -> str:
            calls.enter(name)
            try:
                loop = asyncio.get_running_loop()
                done: asyncio.Future[None] = loop.create_future()

                def ring() -> None:  # in the task moving time: unparked at once
                    calls.park(-1)
                    done.set_result(None)

                calls.park(1)
                clock.call_at(clock.monotonic() + LATENCY, ring)
                await done
            finally:
                calls.leave(name)
            return name

        return Deployment(call, name=name, max_concurrent_calls=limit)

    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model("g", [deployment("a"), deployment("b")], strategy=strategy)
    return manager


def _rounds(times: list[float]) -> Counter[float]:
    return Counter(round(t, 6) for t in times)


IDEAL = Counter({round(LATENCY * k, 6): 4 for k in range(1, 11)})  # 40 calls, 4 slots


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_forty_threads_use_both_deployments_and_finish_in_ideal_time(
    strategy: str, clock: FakeClock
) -> None:
    """40 threads on two deployments of max 2 (0.3 s calls): 4 finish every 0.3 s, all by 3 s
    on the fake clock, about half on each deployment, never more than 2 in flight on one."""
    calls = _Calls()
    manager = _sync_group(clock, calls, strategy)
    queue = _queue(manager)
    finished: list[tuple[str, float]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            response = manager.chat("q", timeout=60)
            finished.append((response.model, clock.monotonic()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for _ in range(10):  # each round: everyone parked in a call or queued, then 0.3 s pass
        _until(lambda: calls.parked + len(queue) + len(finished) + len(errors) == 40)
        assert calls.parked == 4  # every slot of the group busy
        clock.advance(LATENCY)
    for t in threads:
        t.join(5)
    assert errors == []
    assert _rounds([at for _, at in finished]) == IDEAL
    served = Counter(model for model, _ in finished)
    assert abs(served["g[a]"] - served["g[b]"]) <= 4, served
    assert max(calls.peak.values()) == 2
    assert len(queue) == 0 and clock._alarms == {}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_forty_tasks_use_both_deployments_and_finish_in_ideal_time(
    strategy: str, clock: FakeClock
) -> None:
    """40 asyncio tasks on two deployments of max 2 (0.3 s calls): 4 finish every 0.3 s, all
    by 3 s on the fake clock, about half on each deployment, never more than 2 in flight."""
    calls = _Calls()
    manager = _async_group(clock, calls, strategy)
    queue = _queue(manager)
    finished: list[tuple[str, float]] = []

    async def one() -> None:
        response = await manager.achat("q", timeout=60)
        finished.append((response.model, clock.monotonic()))

    async def run() -> None:
        tasks = [asyncio.create_task(one()) for _ in range(40)]
        for _ in range(10):
            for _ in range(1000):  # let every task reach a call or the queue
                if calls.parked + len(queue) + len(finished) == 40:
                    break
                await asyncio.sleep(0)
            assert calls.parked == 4
            clock.advance(LATENCY)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    assert _rounds([at for _, at in finished]) == IDEAL
    served = Counter(model for model, _ in finished)
    assert abs(served["g[a]"] - served["g[b]"]) <= 4, served
    assert max(calls.peak.values()) == 2
    assert len(queue) == 0 and clock._alarms == {}


# -- one waiter, two deployments -------------------------------------------------------------


class _Held:
    """A group of two deployments of max 1 whose calls named ``hold-<x>`` block until freed."""

    def __init__(self, clock: FakeClock, asynchronous: bool = False) -> None:
        self.gates = {"a": threading.Event(), "b": threading.Event()}
        self.agates: dict[str, asyncio.Event] = {}
        self.calls: list[tuple[str, str]] = []

        def deployment(name: str) -> Deployment:
            def call(prompt: str, **kwargs: Any) -> str:
                self.calls.append((name, prompt))
                if prompt.startswith("hold"):
                    assert self.gates[prompt[-1]].wait(5)
                return name

            async def acall(prompt: str, **kwargs: Any) -> str:
                self.calls.append((name, prompt))
                if prompt.startswith("hold"):
                    await self.agates[prompt[-1]].wait()
                return name

            provider = CallableProvider(acall if asynchronous else call, enforces_timeout=True)
            return Deployment(provider, name=name, max_concurrent_calls=1)

        self.manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
        self.manager.register_model("g", [deployment("a"), deployment("b")])


@pytest.mark.parametrize("frees", ["a", "b"])
def test_a_thread_waiter_takes_whichever_deployment_frees_first(
    frees: str, clock: FakeClock
) -> None:
    """Both deployments busy: a waiting thread is served by the one whose slot frees first,
    while the other stays busy, with no time passing."""
    held = _Held(clock)
    manager = held.manager
    holders = {
        x: threading.Thread(target=manager.generate, args=(f"hold-{x}",)) for x in ("a", "b")
    }
    for x in ("a", "b"):
        holders[x].start()
        _until(lambda x=x: _bulkhead(manager, f"g[{x}]").in_flight == 1)  # type: ignore[misc]
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(manager.chat("late", timeout=60)))
    waiter.start()
    _until(lambda: len(_queue(manager)) == 1)
    held.gates[frees].set()
    waiter.join(5)
    other = "b" if frees == "a" else "a"
    assert [r.model for r in got] == [f"g[{frees}]"]
    assert _bulkhead(manager, f"g[{other}]").in_flight == 1  # still held
    held.gates[other].set()
    for t in holders.values():
        t.join(5)
    assert clock.monotonic() == 0.0 and len(_queue(manager)) == 0


@pytest.mark.parametrize("frees", ["a", "b"])
def test_a_task_waiter_takes_whichever_deployment_frees_first(frees: str, clock: FakeClock) -> None:
    """Async twin: a queued task runs on the deployment that frees first."""
    held = _Held(clock, asynchronous=True)
    manager = held.manager

    async def run() -> str:
        held.agates = {"a": asyncio.Event(), "b": asyncio.Event()}
        holders = [asyncio.create_task(manager.agenerate(f"hold-{x}")) for x in ("a", "b")]
        late = asyncio.create_task(manager.achat("late", timeout=60))
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(_queue(manager)) == 1 and not late.done()
        held.agates[frees].set()
        model = (await late).model
        other = "b" if frees == "a" else "a"
        assert _bulkhead(manager, f"g[{other}]").in_flight == 1
        held.agates[other].set()
        await asyncio.gather(*holders)
        return model

    assert asyncio.run(run()) == f"g[{frees}]"
    assert clock.monotonic() == 0.0 and len(_queue(manager)) == 0


def test_a_group_waiter_fails_with_the_typed_error_at_its_fake_deadline(clock: FakeClock) -> None:
    """Both deployments held: a request waits on the group until fake time reaches its 5 s
    deadline, not before, then fails with LocalRateLimitError (bulkhead full, no breaker count)."""
    held = _Held(clock)
    manager = held.manager
    holders = [threading.Thread(target=manager.generate, args=(f"hold-{x}",)) for x in ("a", "b")]
    for t in holders:
        t.start()
    _until(lambda: all(_bulkhead(manager, f"g[{x}]").in_flight == 1 for x in ("a", "b")))
    outcome: list[BaseException | str] = []

    def late() -> None:
        try:
            outcome.append(manager.generate("late", timeout=5))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=late)
    waiter.start()
    try:
        _until(lambda: len(_queue(manager)) == 1)
        clock.advance(4.999)
        _until(lambda: len(_queue(manager)) == 1)
        waiter.join(0.05)
        assert outcome == []
        clock.advance(0.001)
        waiter.join(5)
    finally:
        for gate in held.gates.values():
            gate.set()
        for t in holders:
            t.join(5)
    [error] = outcome
    assert isinstance(error, LocalRateLimitError) and error.limit == "max_concurrent_calls"
    assert error.failures[-1].reason is FailureReason.BULKHEAD_FULL
    assert manager.get_model_info("g[a]")["breaker"]["failure_count"] == 0
    assert len(_queue(manager)) == 0 and clock._alarms == {}
    assert ("a", "late") not in held.calls and ("b", "late") not in held.calls


def test_a_task_cancelled_while_waiting_on_the_group_leaves_the_queue(clock: FakeClock) -> None:
    """A request cancelled while queued on a full group takes no slot; the next waiter is
    served as soon as a slot frees."""
    held = _Held(clock, asynchronous=True)
    manager = held.manager

    async def run() -> str:
        held.agates = {"a": asyncio.Event(), "b": asyncio.Event()}
        holders = [asyncio.create_task(manager.agenerate(f"hold-{x}")) for x in ("a", "b")]
        doomed = asyncio.create_task(manager.agenerate("doomed", timeout=60))
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(_queue(manager)) == 1
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert len(_queue(manager)) == 0
        nxt = asyncio.create_task(manager.agenerate("next", timeout=60))
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(_queue(manager)) == 1
        held.agates["b"].set()
        answer = await nxt
        held.agates["a"].set()
        await asyncio.gather(*holders)
        return answer

    assert asyncio.run(run()) == "b"
    assert not any(prompt == "doomed" for _, prompt in held.calls)
    assert len(_queue(manager)) == 0 and clock._alarms == {}
    assert manager.get_metrics()["cancelled_requests"] == 1


def test_a_woken_task_that_is_cancelled_passes_its_wake_up_on(clock: FakeClock) -> None:
    """A task woken by a freed slot but cancelled before it ran hands the slot to the next
    waiter of the group instead of swallowing it."""
    a, b = Bulkhead(1), Bulkhead(1)

    class _Group:
        def room_elsewhere(self, bulkhead: Bulkhead, now: float) -> bool:
            other = b if bulkhead is a else a
            return other.in_flight < 1

        def next_ready(self, now: float) -> float:
            return float("inf")

    queue = GroupQueue(_Group())
    a.group = b.group = queue
    assert a.try_acquire() and b.try_acquire()

    async def run() -> bool:
        first = asyncio.create_task(queue.await_slot(a, clock, 10**6))
        await asyncio.sleep(0)
        second = asyncio.create_task(queue.await_slot(a, clock, 10**6))
        await asyncio.sleep(0)
        assert len(queue) == 2
        a.release()  # wakes the first waiter ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(run()) is True
    assert a.in_flight == 1 and len(queue) == 0 and clock._alarms == {}


def test_a_keyboard_interrupt_while_waiting_on_the_group_leaves_the_queue(
    clock: FakeClock,
) -> None:
    """A thread interrupted while queued on the group leaves the queue; a later waiter still
    gets the next freed slot."""
    import signal

    a, b = Bulkhead(1), Bulkhead(1)

    class _Group:
        def room_elsewhere(self, bulkhead: Bulkhead, now: float) -> bool:
            return False

        def next_ready(self, now: float) -> float:
            return float("inf")

    queue = GroupQueue(_Group())
    a.group = b.group = queue
    assert a.try_acquire() and b.try_acquire()
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        with pytest.raises(KeyboardInterrupt):
            queue.wait(a, clock, 10**6)  # no real bound: only the signal ends it
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(queue) == 0 and clock._alarms == {}
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(queue.wait(b, clock, 10**6)))
    waiter.start()
    _until(lambda: len(queue) == 1)
    b.release()
    waiter.join(5)
    assert got == [True] and b.in_flight == 1


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_rate_limited_group_waits_for_the_deployment_with_room_first(
    asynchronous: bool, clock: FakeClock
) -> None:
    """Both deployments at rpm=1 (a used at 0 s, b at 10 s): a request at 20 s waits for a's
    window (60 s), not b's (70 s), whichever the group tried last."""
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model(
        "g",
        [
            Deployment(lambda p, **k: "a", name="a", rpm=1),
            Deployment(lambda p, **k: "b", name="b", rpm=1),
        ],
    )
    assert manager.chat("one").model == "g[a]"
    clock.advance(10)
    assert manager.chat("two").model == "g[b]"
    clock.advance(10)
    if asynchronous:
        response = asyncio.run(manager.achat("three", timeout=120))
    else:
        response = manager.chat("three", timeout=120)
    assert response.model == "g[a]"
    assert clock.monotonic() == pytest.approx(60.0)


def test_a_rate_limited_group_past_the_deadline_is_a_typed_error(clock: FakeClock) -> None:
    """Both deployments at rpm=1 and no room within the deadline: LocalRateLimitError naming
    the soonest room, at once, without sleeping."""
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model(
        "g",
        [
            Deployment(lambda p, **k: "a", name="a", rpm=1),
            Deployment(lambda p, **k: "b", name="b", rpm=1),
        ],
    )
    manager.chat("one")
    clock.advance(10)
    manager.chat("two")
    clock.advance(10)
    with pytest.raises(LocalRateLimitError) as caught:
        manager.chat("three", timeout=30)
    assert caught.value.limit == "rpm"
    assert caught.value.retry_in == pytest.approx(40.0)
    assert clock.monotonic() == pytest.approx(20.0)


# -- logging ---------------------------------------------------------------------------------


def test_the_wait_is_reported_once_per_deployment_not_per_request(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """40 tasks queue on a full group: at most one INFO line per deployment says it is at its
    limit, not one per waiting request."""
    calls = _Calls()
    manager = _async_group(clock, calls, "weighted")
    queue = _queue(manager)
    done: list[str] = []

    async def one() -> None:
        done.append(await manager.agenerate("q", timeout=60))

    async def run() -> None:
        tasks = [asyncio.create_task(one()) for _ in range(40)]
        for _ in range(10):
            for _ in range(1000):
                if calls.parked + len(queue) + len(done) == 40:
                    break
                await asyncio.sleep(0)
            clock.advance(LATENCY)
        await asyncio.gather(*tasks)

    with caplog.at_level(logging.INFO, logger="reliable_llm"):
        asyncio.run(run())
    lines = [r.getMessage() for r in caplog.records if "waiting for capacity" in r.getMessage()]
    assert 1 <= len(lines) <= 2, lines
    assert len(set(lines)) == len(lines)


def test_the_readme_group_wait_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's group-wait example serves the queued request on the deployment that
    frees first."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("- **A full group waits as one**") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["gpt-4o[westus]"]


def test_each_driver_waits_on_the_group_and_takes_the_slot_freed_first(
    driver: str, clock: FakeClock
) -> None:
    """Sync, async, stream and astream requests queued on a full group are each served by
    the deployment that frees first, with no time passing."""
    from drivers import ask_with

    held = _Held(clock)
    manager = held.manager
    holders = {
        x: threading.Thread(target=manager.generate, args=(f"hold-{x}",)) for x in ("a", "b")
    }
    for x in ("a", "b"):
        holders[x].start()
        _until(lambda x=x: _bulkhead(manager, f"g[{x}]").in_flight == 1)  # type: ignore[misc]
    got: list[str] = []
    waiter = threading.Thread(
        target=lambda: got.append(ask_with(driver, manager, "late", timeout=60).model)
    )
    waiter.start()
    _until(lambda: len(_queue(manager)) == 1)
    held.gates["a"].set()
    waiter.join(5)
    assert got == ["g[a]"] and _bulkhead(manager, "g[b]").in_flight == 1
    held.gates["b"].set()
    for t in holders.values():
        t.join(5)
    assert clock.monotonic() == 0.0 and len(_queue(manager)) == 0


def test_group_waiters_are_served_first_come_first_served(clock: FakeClock) -> None:
    """Three requests queued in turn on a full group run in the order they queued once a
    slot frees."""
    held = _Held(clock)
    manager = held.manager
    holders = [threading.Thread(target=manager.generate, args=(f"hold-{x}",)) for x in ("a", "b")]
    for t in holders:
        t.start()
    _until(lambda: all(_bulkhead(manager, f"g[{x}]").in_flight == 1 for x in ("a", "b")))
    waiters = []
    for i in range(3):
        waiter = threading.Thread(target=manager.generate, args=(f"w{i}",), kwargs={"timeout": 60})
        waiter.start()
        waiters.append(waiter)
        _until(lambda i=i: len(_queue(manager)) == i + 1)  # type: ignore[misc]
    held.gates["b"].set()
    for waiter in waiters:
        waiter.join(5)
    assert [prompt for _, prompt in held.calls if prompt.startswith("w")] == ["w0", "w1", "w2"]
    held.gates["a"].set()
    for t in holders:
        t.join(5)
    assert len(_queue(manager)) == 0
