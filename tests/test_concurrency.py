"""Many threads and 1,000 asyncio tasks: exact counts, no deadlock, no serialization."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reliable_llm import (
    BreakerPolicy,
    ChatRequest,
    ChatResponse,
    LLMManager,
    Provider,
    ServerError,
    TimeoutPolicy,
)
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


class _Gate(Provider):
    """Blocks every call until `release()`; counts how many are inside at once."""

    provider_name = "gate"

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._aopen: asyncio.Event | None = None

    def release(self) -> None:
        self._open.set()
        if self._aopen is not None:
            self._aopen.set()

    def _enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        self._enter()
        self._open.wait(5)
        return ChatResponse(text=request.prompt)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        self._enter()
        if self._aopen is None:
            self._aopen = asyncio.Event()
        await self._aopen.wait()
        return ChatResponse(text=request.prompt)


def test_closed_breaker_does_not_serialize_slow_calls_across_threads(clock: FakeClock) -> None:
    """Eight threads are inside the same model at once (pybreaker's call() would allow one)."""
    manager = LLMManager(clock=clock, enable_caching=False)
    gate = _Gate()
    manager.register_model("m", gate)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(manager.generate, f"p{i}") for i in range(8)]
        deadline = time.monotonic() + 5
        while gate.inside < 8 and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.release()
        results = sorted(f.result() for f in futures)
    assert gate.peak == 8
    assert results == sorted(f"p{i}" for i in range(8))


async def test_closed_breaker_does_not_serialize_tasks(clock: FakeClock) -> None:
    """1,000 tasks are inside the same async model at once."""
    manager = LLMManager(clock=clock, enable_caching=False)
    gate = _Gate()
    manager.register_model("m", gate)
    tasks = [asyncio.create_task(manager.agenerate(f"p{i}")) for i in range(1000)]
    while gate.inside < 1000:  # noqa: ASYNC110 - polling the gate is the point here
        await asyncio.sleep(0)
    gate.release()
    results = await asyncio.gather(*tasks)
    assert gate.peak == 1000
    assert sorted(results) == sorted(f"p{i}" for i in range(1000))


def test_counts_add_up_exactly_across_threads(clock: FakeClock) -> None:
    """2,000 requests over 16 threads, a third failing over: every counter is exact."""
    manager = LLMManager(max_retries=0, clock=clock, enable_caching=False)
    primary = ScriptedModel(["ok", "ok", ServerError("x")] * 667)
    backup = ScriptedModel(default="b")
    manager.register_model("primary", primary, breaker=BreakerPolicy(failure_threshold=10_000))
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: manager.chat(f"q{i}").model, range(2000)))
    metrics = manager.get_metrics()
    assert results.count("backup") == metrics["fallbacks"]["total"] == backup.call_count
    assert primary.call_count == 2000
    assert metrics["total_requests"] == metrics["successful_requests"] == 2000
    primary_stats = metrics["models"]["primary"]
    assert primary_stats["success_count"] + primary_stats["failure_count"] == 2000
    assert primary_stats["requests_served"] + metrics["models"]["backup"]["requests_served"] == 2000


async def test_counts_add_up_exactly_across_1000_tasks(clock: FakeClock) -> None:
    """1,000 concurrent tasks with retries: attempts, retries and successes are exact."""
    manager = LLMManager(
        max_retries=1,
        clock=clock,
        enable_caching=False,
        random=lambda: 0.0,
        timeouts=TimeoutPolicy(total=1e9, per_attempt=1e9),  # every task's sleep moves the clock
    )
    model = ScriptedModel([ServerError("x"), "ok"] * 1000, clock=clock)
    manager.register_model("m", model, breaker=BreakerPolicy(failure_threshold=10_000))
    results = await asyncio.gather(
        *(manager.agenerate(f"q{i}") for i in range(1000)), return_exceptions=True
    )
    metrics = manager.get_metrics()
    ok = sum(r == "ok" for r in results)
    assert model.call_count == metrics["models"]["m"]["attempts"]
    exhausted = metrics["fallbacks"]["by_reason"].get("retries_exhausted", 0)
    assert metrics["retries"] + exhausted == metrics["models"]["m"]["failure_count"]
    assert metrics["successful_requests"] == ok == metrics["models"]["m"]["success_count"]
    assert metrics["failed_requests"] == 1000 - ok == exhausted
    assert metrics["total_requests"] == 1000


def test_identical_requests_in_flight_make_one_upstream_call(clock: FakeClock) -> None:
    """Eight threads asking the same question at once cause exactly one upstream call."""
    manager = LLMManager(clock=clock)
    gate = _Gate()
    manager.register_model("m", gate)
    arrived = threading.Semaphore(0)

    def ask() -> ChatResponse:
        arrived.release()
        return manager.chat("same question")

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask) for _ in range(8)]
        for _ in range(8):
            assert arrived.acquire(timeout=5)
        gate.release()  # late arrivals join the flight or find the stored answer
        responses = [f.result() for f in futures]
    assert gate.peak == 1 and gate.inside == 1
    assert {r.text for r in responses} == {"same question"}
    assert sum(not r.cached for r in responses) == 1
    assert manager.get_metrics()["cache"]["hits"] == 7


async def test_identical_tasks_in_flight_make_one_upstream_call(clock: FakeClock) -> None:
    """A hundred tasks asking the same question at once cause one upstream call."""
    manager = LLMManager(clock=clock)
    model = ScriptedModel(default=Reply("shared", latency=0.01))
    manager.register_model("m", model)
    responses = await asyncio.gather(*(manager.achat("same") for _ in range(100)))
    assert model.call_count == 1
    assert [r.text for r in responses] == ["shared"] * 100


async def test_half_open_lets_one_task_trial_while_others_fall_back(clock: FakeClock) -> None:
    """Under 50 concurrent tasks, a half-open breaker admits exactly one trial call."""
    manager = LLMManager(max_retries=0, clock=clock, enable_caching=False)
    primary = ScriptedModel([ServerError("down")], default=Reply("primary back", latency=0.01))
    backup = ScriptedModel(default="backup")
    manager.register_model("primary", primary, breaker=BreakerPolicy(1, recovery_timeout=30))
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    await manager.agenerate("trip")
    clock.advance(30)
    results = await asyncio.gather(*(manager.achat(f"q{i}") for i in range(50)))
    assert primary.call_count == 2
    assert [r.model for r in results].count("primary") == 1
    assert manager.get_model_info("primary")["breaker"]["state"] == "closed"


async def test_async_path_never_blocks_the_loop_with_a_sync_model(clock: FakeClock) -> None:
    """A blocking seed-style callable runs in a worker thread under agenerate."""
    release = threading.Event()
    manager = LLMManager(clock=clock)
    manager.register_model("blocking", lambda prompt: "done" if release.wait(5) else "timeout")
    task = asyncio.create_task(manager.agenerate("hi"))
    await asyncio.sleep(0.01)
    assert not task.done()  # the loop kept running while the model blocked
    release.set()
    assert await task == "done"


@pytest.mark.parametrize("n", [1, 3])
def test_async_callable_works_from_sync_code(clock: FakeClock, n: int) -> None:
    """An async seed-style model can be called from sync generate()."""

    async def model(prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt * n

    manager = LLMManager(clock=clock)
    manager.register_model("m", model)
    assert manager.generate("ab") == "ab" * n


async def test_hung_async_model_times_out_and_falls_back(clock: FakeClock) -> None:
    """An async callable that never answers is cut off at the per-attempt timeout."""
    from reliable_llm import TimeoutPolicy

    manager = LLMManager(max_retries=0, clock=clock, timeouts=TimeoutPolicy(per_attempt=0.001))

    async def hung(prompt: str) -> str:
        await asyncio.Event().wait()
        return "never"

    manager.register_model("hung", hung)
    manager.register_model("backup", ScriptedModel(default="rescued"))
    manager.set_fallback_chain(["backup"])
    response = await manager.achat("hi")
    assert response.model == "backup"
    assert type(response.attempts[0].error).__name__ == "ProviderTimeoutError"


async def test_outside_cancellation_is_not_a_timeout(clock: FakeClock) -> None:
    """Cancelling the caller's task cancels the request; it is not reported as a timeout."""
    manager = LLMManager(clock=clock)
    started = asyncio.Event()

    async def slow(prompt: str) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    manager.register_model("slow", slow, breaker=BreakerPolicy(1))
    task = asyncio.create_task(manager.agenerate("hi"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert manager.get_model_info("slow")["breaker"]["state"] == "closed"
    assert manager.get_model_info("slow")["failure_count"] == 0
