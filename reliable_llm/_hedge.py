"""Hedged requests: a slow model's request also goes to the next model; the first answer wins.

`HedgingEngine` is the `Engine` a manager uses when it has a `HedgePolicy` (a manager without
one never runs this code: its per-call path is unchanged). It walks the route like `Engine.run`
but keeps up to two models' attempt loops in flight: the current model's and, once it has not
answered after the policy's delay, the next admitted model's. Each contender is the very same
per-model loop (`Engine._complete` / `Engine._acomplete` over `ModelAttempts`); this module
only starts them, waits for the first answer and stops the loser:

- async: each contender is a task; the loser's task is cancelled (its provider call sees
  ``CancelledError``, its attempt is recorded as cancelled and a half-open trial is freed by
  `ModelAttempts.release`) and awaited before the answer is returned, so the response's
  ``attempts`` hold both calls.
- sync: each contender runs in a worker thread; the caller waits on a queue. The loser is
  abandoned: its in-flight attempt is recorded as cancelled and its trial freed at once, from
  the caller's thread, and whatever its blocking call later returns is discarded
  (`RacingAttempts` decides, under a lock held for a few instructions only, which of the two
  threads records an attempt).

The hedge delay is wall-clock time, like the per-attempt timeout it races against.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reliable_llm._attempts import ModelAttempts
from reliable_llm._breaker import Admission, Ticket
from reliable_llm._clock import Clock
from reliable_llm._deadline import start_in_worker
from reliable_llm._engine import Engine
from reliable_llm._errors import FailureReason, ModelFailure
from reliable_llm._events import EventHook, HedgeStarted
from reliable_llm._metrics import percentiles
from reliable_llm._policies import HedgePolicy
from reliable_llm._types import ChatResponse

if TYPE_CHECKING:
    import asyncio

    from reliable_llm._plan import Plan
    from reliable_llm._registry import ModelEntry

__all__ = ["HedgingEngine", "RacingAttempts"]

_REJECTED = Admission.REJECTED
_P95_REFRESH = 1.0  # seconds (manager clock) a model's p95 delay is reused before recomputing


class RacingAttempts(ModelAttempts):
    """`ModelAttempts` run in a worker thread that the caller may abandon at any moment.

    Exactly one thread records each attempt and frees the half-open trial: the worker, when
    it claimed its attempt's outcome before the caller abandoned it; otherwise the caller (the
    attempt as cancelled). After abandonment the worker records nothing and starts no new
    attempt. The lock is held for a few instructions only, never around a provider call, a
    validator, a classifier or a hook.
    """

    __slots__ = ("abandoned", "lock", "released", "settling")

    def __init__(self, engine: Engine, entry: ModelEntry, plan: Plan, admission: Ticket) -> None:
        super().__init__(engine, entry, plan, admission)
        self.lock = threading.Lock()
        self.abandoned = False
        self.settling = False  # the worker is recording its attempt's outcome
        self.released = False

    def start(self) -> float | None:
        with self.lock:
            if self.abandoned:
                return None
            return super().start()

    def _claim(self) -> bool:
        with self.lock:
            if self.abandoned:
                return False  # the caller records this attempt, as cancelled
            self.settling = True
            return True

    def failed(self, exc: Exception) -> float | None:
        if not self._claim():
            return None
        try:
            return super().failed(exc)
        finally:
            self.settling = False

    def succeeded(self, response: ChatResponse) -> ChatResponse | None:
        if not self._claim():
            return None  # lost the race: the answer is discarded
        try:
            return super().succeeded(response)
        finally:
            self.settling = False

    def release(self) -> None:
        """The worker is done (its ``finally``): release unless the caller already did."""
        with self.lock:
            if self.released:
                return
            self.released = self.abandoned = True
        super().release()

    def abandon(self) -> None:
        """Stop waiting for this contender (from the caller's thread): record its attempt in
        flight as cancelled and free its half-open trial; its worker's outcome is discarded.
        A worker already recording an outcome finishes that and releases on its own."""
        with self.lock:
            self.abandoned = True
            if self.released or self.settling:
                return
            self.released = True
        super().release()


class HedgingEngine(Engine):
    """An `Engine` that hedges slow requests per its `HedgePolicy` (see the module docstring)."""

    __slots__ = ("_delays", "latencies", "policy")

    def __init__(
        self,
        clock: Clock,
        random: Callable[[], float],
        emit: EventHook,
        policy: HedgePolicy,
        latencies: Callable[[str], list[float]],
    ) -> None:
        super().__init__(clock, random, emit)
        self.policy = policy
        self.latencies = latencies  # a model's recent successful attempt durations, seconds
        self._delays: dict[str, tuple[float, float]] = {}

    def delay(self, model: str) -> float:
        """Seconds to wait for ``model`` before hedging."""
        policy = self.policy
        if policy.delay != "p95":
            return float(policy.delay)
        now = self.clock.monotonic()
        known = self._delays.get(model)
        if known is not None and now - known[0] < _P95_REFRESH:
            return known[1]
        samples = self.latencies(model)
        if len(samples) < policy.min_samples:
            value = policy.default_delay
        else:
            p95 = percentiles(samples)["p95"]
            assert p95 is not None
            value = max(policy.min_delay, p95)
        self._delays[model] = (now, value)
        return value

    def _admit(self, plan: Plan, start: int, racing: bool) -> tuple[int, ModelAttempts] | None:
        """The next model from ``start`` whose breaker admits the request, with its attempts;
        models skipped on the way are given up. None when the route has ended."""
        entries = plan.entries
        for index in range(start, len(entries)):
            entry = entries[index]
            ticket = entry.breaker.admit(plan.per_attempt)
            if ticket is _REJECTED:
                if plan.give_up(index, entry.circuit_open, self.emit):
                    return None
                continue
            kind = RacingAttempts if racing else ModelAttempts
            return index, kind(self, entry, plan, ticket)
        return None

    def _hedge_due(self, plan: Plan, running: int, hedged: bool, nxt: int) -> bool:
        return not hedged and running == 1 and nxt < len(plan.entries)

    def _hedge(self, plan: Plan, nxt: int, racing: bool) -> tuple[int, ModelAttempts] | None:
        """The hedge to start: the next model from ``nxt`` whose breaker admits
        the request. None when no time is left or no model admits it; models skipped on the
        way are given up only when a hedge starts past them (the route has moved on)."""
        if plan.deadline - self.clock.monotonic() <= 0:
            return None
        entries = plan.entries
        for index in range(nxt, len(entries)):
            entry = entries[index]
            ticket = entry.breaker.admit(plan.per_attempt)
            if ticket is _REJECTED:
                continue
            for skipped in range(nxt, index):
                plan.give_up(skipped, entries[skipped].circuit_open, self.emit)
            kind = RacingAttempts if racing else ModelAttempts
            return index, kind(self, entry, plan, ticket)
        return None

    @staticmethod
    def _finish(plan: Plan, response: ChatResponse) -> ChatResponse:
        # The loser's attempt was recorded after the winner's response was built.
        response.attempts = tuple(plan.attempts)
        response.fallback_from = tuple(plan.given_up)
        return response

    # -- sync ------------------------------------------------------------------------------

    def run(self, plan: Plan) -> ChatResponse:
        """Serve the plan with blocking calls, hedging a slow model with the next one."""
        if len(plan.entries) < 2:
            return super().run(plan)
        results: queue.SimpleQueue[tuple[RacingAttempts, ChatResponse | None, Any]] = (
            queue.SimpleQueue()
        )
        running: dict[RacingAttempts, int] = {}
        nxt = 0
        hedged = False
        hedge_at = delay = 0.0
        try:
            while True:
                if not running:
                    admitted = self._admit(plan, nxt, True)
                    if admitted is None:
                        raise plan.error()
                    index, tries = admitted
                    self._start(tries, results)
                    running[tries] = index  # type: ignore[index]
                    nxt = index + 1
                    if not hedged:
                        delay = self.delay(tries.entry.name)
                        hedge_at = time.monotonic() + delay
                wait = plan.deadline - self.clock.monotonic()
                due = self._hedge_due(plan, len(running), hedged, nxt)
                if due:
                    wait = min(wait, hedge_at - time.monotonic())
                try:
                    tries, response, error = results.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    if due and time.monotonic() >= hedge_at:
                        hedged = True
                        first: ModelAttempts = next(iter(running))
                        admitted = self._hedge(plan, nxt, True)
                        if admitted is not None:
                            index, hedge = admitted
                            self._start(hedge, results)
                            running[hedge] = index  # type: ignore[index]
                            nxt = index + 1
                            self.emit(HedgeStarted(first.entry.name, hedge.entry.name, delay))
                        continue
                    if plan.deadline - self.clock.monotonic() > 0:
                        continue
                    raise self._timed_out(plan, running) from None
                index = running.pop(tries)
                if error is not None:
                    raise error
                if response is not None:
                    for loser in running:
                        loser.abandon()
                    running.clear()
                    return self._finish(plan, response)
                if tries.failure is not None and plan.give_up(index, tries.failure, self.emit):
                    raise plan.error()
        finally:
            for loser in running:
                loser.abandon()

    def _start(
        self,
        tries: ModelAttempts,
        results: queue.SimpleQueue[tuple[RacingAttempts, ChatResponse | None, Any]],
    ) -> None:
        assert isinstance(tries, RacingAttempts)
        complete = self._complete

        def contend() -> None:
            try:
                outcome = complete(tries)
            except BaseException as exc:  # handed to the waiting caller, who re-raises it
                results.put((tries, None, exc))
            else:
                results.put((tries, outcome, None))
            finally:
                tries.release()

        start_in_worker(contend)

    def _timed_out(self, plan: Plan, running: dict[RacingAttempts, int]) -> Exception:
        """Give up every contender still running at the deadline; the request's error."""
        for tries, index in sorted(running.items(), key=lambda item: item[1]):
            tries.abandon()
            failure = ModelFailure(
                tries.entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(tries.errors)
            )
            plan.give_up(index, failure, self.emit)
        running.clear()
        return plan.error()

    # -- async -----------------------------------------------------------------------------

    async def arun(self, plan: Plan) -> ChatResponse:
        """Serve the plan without blocking the event loop, hedging a slow model."""
        if len(plan.entries) < 2:
            return await super().arun(plan)
        import asyncio

        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task[ChatResponse | None], tuple[int, ModelAttempts]] = {}
        nxt = 0
        hedged = False
        hedge_at = delay = 0.0
        try:
            while True:
                if not running:
                    admitted = self._admit(plan, nxt, False)
                    if admitted is None:
                        raise plan.error()
                    index, tries = admitted
                    running[loop.create_task(self._acontend(tries))] = admitted
                    nxt = index + 1
                    if not hedged:
                        delay = self.delay(tries.entry.name)
                        hedge_at = loop.time() + delay
                due = self._hedge_due(plan, len(running), hedged, nxt)
                timeout = max(hedge_at - loop.time(), 0.0) if due else None
                done, _ = await asyncio.wait(
                    running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    hedged = True
                    first = next(iter(running.values()))[1]
                    admitted = self._hedge(plan, nxt, False)
                    if admitted is not None:
                        hedge = admitted[1]
                        running[loop.create_task(self._acontend(hedge))] = admitted
                        nxt = admitted[0] + 1
                        self.emit(HedgeStarted(first.entry.name, hedge.entry.name, delay))
                    continue
                for task in sorted(done, key=lambda t: running[t][0]):
                    index, tries = running.pop(task)
                    response = task.result()
                    if response is not None:
                        await _cancel(running)
                        return self._finish(plan, response)
                    assert tries.failure is not None
                    if plan.give_up(index, tries.failure, self.emit):
                        raise plan.error()
        finally:
            await _cancel(running)

    async def _acontend(self, tries: ModelAttempts) -> ChatResponse | None:
        try:
            return await self._acomplete(tries)
        finally:
            tries.release()


async def _cancel(running: dict[Any, Any]) -> None:
    """Cancel the losing tasks and wait until each has recorded its cancelled attempt."""
    import asyncio

    tasks = list(running)
    running.clear()
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
