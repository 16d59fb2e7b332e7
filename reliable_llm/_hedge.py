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

Streams race the same way until their first chunk (`_open_route` / `_aopen_route`): the
winner's opened stream is handed to `Engine.stream`'s relay, and a loser that opened too is
closed. The hedge delay is wall-clock time, like the per-attempt timeout it races against.
"""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from reliable_llm._attempts import ModelAttempts
from reliable_llm._breaker import Admission
from reliable_llm._clock import Clock
from reliable_llm._deadline import start_in_worker
from reliable_llm._engine import Engine, _aclose, _AOpened, _Opened, _Source
from reliable_llm._errors import FailureReason, ModelFailure
from reliable_llm._events import EventHook, HedgeStarted
from reliable_llm._metrics import percentiles
from reliable_llm._policies import HedgePolicy
from reliable_llm._racing import RacingAttempts
from reliable_llm._types import ChatResponse, StreamChunk

if TYPE_CHECKING:
    import asyncio

    from reliable_llm._breaker import HasBreaker, ModelBreaker, Ticket
    from reliable_llm._plan import Plan

__all__ = ["HedgingEngine"]

T = TypeVar("T")
# _unhedged: a request with content parts (images, files) is fitted to each model in turn
# through the plan (`Plan.fit` sets ``plan.fitted`` for the model about to be called), which
# two models in flight at once would share; such requests are served without hedging.
_REJECTED = Admission.REJECTED
_P95_REFRESH = 1.0  # seconds (manager clock) a model's p95 delay is reused before recomputing


class HedgingEngine(Engine):
    """An `Engine` that hedges slow requests per its `HedgePolicy` (see the module docstring)."""

    __slots__ = ("_delays", "latencies", "policy")

    # Its races walk the route by index: a group's waiter waits at the deployment it reached
    # (the engine's own loops, used for unhedged requests, would restart the route).
    regroups = False

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
        models skipped on the way are given up. None when the route has ended.

        The same admission as `Engine.run`'s loop (kept in step with it by hand: the drivers
        inline theirs, a method call per model being a measurable share of the hot path)."""
        entries = plan.entries
        for index in range(start, len(entries)):
            entry = entries[index]
            ticket = _ticket(entry.breaker, entries, plan.per_attempt)
            if ticket is _REJECTED:
                if plan.give_up(index, entry.rejection(), self.emit):
                    return None
                continue
            kind = RacingAttempts if racing else ModelAttempts
            return index, kind(self, entry, plan, ticket)
        return None

    async def _aadmit(self, plan: Plan, start: int) -> tuple[int, ModelAttempts] | None:
        """Async twin of `_admit`: a shared breaker (``remote``) asks Redis without blocking
        the event loop."""
        entries = plan.entries
        for index in range(start, len(entries)):
            entry = entries[index]
            ticket = await _aticket(entry.breaker, entries, plan.per_attempt)
            if ticket is _REJECTED:
                if plan.give_up(index, entry.rejection(), self.emit):
                    return None
                continue
            return index, ModelAttempts(self, entry, plan, ticket)
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
            ticket = _ticket(entry.breaker, entries, plan.per_attempt)
            if ticket is not _REJECTED:
                kind = RacingAttempts if racing else ModelAttempts
                return self._hedged(plan, nxt, index, kind(self, entry, plan, ticket))
        return None

    async def _ahedge(self, plan: Plan, nxt: int) -> tuple[int, ModelAttempts] | None:
        """Async twin of `_hedge` (a shared breaker is asked without blocking the loop)."""
        if plan.deadline - self.clock.monotonic() <= 0:
            return None
        entries = plan.entries
        for index in range(nxt, len(entries)):
            entry = entries[index]
            ticket = await _aticket(entry.breaker, entries, plan.per_attempt)
            if ticket is not _REJECTED:
                return self._hedged(plan, nxt, index, ModelAttempts(self, entry, plan, ticket))
        return None

    def _hedged(
        self, plan: Plan, nxt: int, index: int, tries: ModelAttempts
    ) -> tuple[int, ModelAttempts]:
        for skipped in range(nxt, index):
            plan.give_up(skipped, plan.entries[skipped].rejection(), self.emit)
        return index, tries

    @staticmethod
    def _finish(plan: Plan, response: ChatResponse) -> ChatResponse:
        # The loser's attempt was recorded after the winner's response was built.
        response.attempts = tuple(plan.attempts)
        response.fallback_from = tuple(plan.given_up)
        response.fallback_reasons = tuple([str(f.reason) for f in plan.failures])
        return response

    # -- sync ------------------------------------------------------------------------------

    def run(self, plan: Plan) -> ChatResponse:
        """Serve the plan with blocking calls, hedging a slow model with the next one."""
        if len(plan.entries) < 2 or plan.has_parts:  # see _unhedged
            return super().run(plan)
        won = self._race(plan, 0, self._complete_released, None)
        if won is None:
            raise plan.error()
        return self._finish(plan, won[2])

    def _complete_released(self, tries: ModelAttempts) -> ChatResponse | None:
        try:
            return self._complete(tries)
        finally:
            tries.release()

    def _open_route(self, plan: Plan, start: int) -> _Opened | None:
        """Race the opening of streams (the wait for a first chunk) like `run` races calls."""
        if len(plan.entries) - start < 2 or plan.has_parts:  # see _unhedged
            return super()._open_route(plan, start)
        won = self._race(plan, start, self._open_held, _close_opened)
        if won is None:
            return None
        index, tries, (source, first) = won
        return index, tries, source, first

    def _open_held(self, tries: ModelAttempts) -> tuple[_Source, StreamChunk | None] | None:
        opened = None
        try:
            opened = self._open(tries)
            return opened
        finally:
            if opened is None:
                tries.release()  # an opened stream's attempts are released by its reader

    def _race(
        self,
        plan: Plan,
        start: int,
        contend: Callable[[ModelAttempts], T | None],
        discard: Callable[[ModelAttempts, T], None] | None,
    ) -> tuple[int, ModelAttempts, T] | None:
        """Walk the route from ``start``, each model's ``contend(tries)`` in a worker thread,
        hedging once; the first value wins. None when the route ended (failures given up).

        ``discard(tries, value)`` disposes of a value that lost (an opened stream)."""
        results: queue.SimpleQueue[tuple[RacingAttempts, T | None, BaseException | None]] = (
            queue.SimpleQueue()
        )
        running: dict[RacingAttempts, int] = {}
        nxt = start
        hedged = False
        hedge_at = delay = 0.0

        def enter(index: int, tries: ModelAttempts) -> None:
            assert isinstance(tries, RacingAttempts)
            running[tries] = index
            start_in_worker(functools.partial(_contend, tries, contend, discard, results))

        try:
            while True:
                if not running:
                    admitted = self._admit(plan, nxt, True)
                    if admitted is None:
                        return None
                    enter(*admitted)
                    nxt = admitted[0] + 1
                    if not hedged:
                        delay = self.delay(admitted[1].entry.name)
                        hedge_at = time.monotonic() + delay
                wait = plan.deadline - self.clock.monotonic()
                due = self._hedge_due(plan, len(running), hedged, nxt)
                if due:
                    wait = min(wait, hedge_at - time.monotonic())
                try:
                    tries, value, error = results.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    if due and time.monotonic() >= hedge_at:
                        hedged = True
                        first = next(iter(running))
                        admitted = self._hedge(plan, nxt, True)
                        if admitted is not None:
                            enter(*admitted)
                            nxt = admitted[0] + 1
                            hedge = admitted[1].entry.name
                            self.emit(HedgeStarted(first.entry.name, hedge, delay))
                        continue
                    if plan.deadline - self.clock.monotonic() > 0:
                        continue
                    self._time_out(plan, running)
                    return None
                index = running.pop(tries)
                if error is not None:
                    raise error
                if value is not None:
                    return index, tries, value
                if tries.failure is not None and plan.give_up(index, tries.failure, self.emit):
                    return None
        finally:
            for loser in running:
                loser.abandon()
            # Values delivered before their contender was abandoned: nobody will read them.
            while discard is not None:
                try:
                    tries, value, _ = results.get_nowait()
                except queue.Empty:
                    break
                if value is not None:
                    discard(tries, value)

    def _time_out(self, plan: Plan, running: dict[RacingAttempts, int]) -> None:
        """Give up every contender still running at the deadline."""
        for tries, index in sorted(running.items(), key=lambda item: item[1]):
            tries.abandon()
            failure = ModelFailure(
                tries.entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(tries.errors)
            )
            plan.give_up(index, failure, self.emit)
        running.clear()

    # -- async -----------------------------------------------------------------------------

    async def arun(self, plan: Plan) -> ChatResponse:
        """Serve the plan without blocking the event loop, hedging a slow model."""
        if len(plan.entries) < 2 or plan.has_parts:  # see _unhedged
            return await super().arun(plan)
        won = await self._arace(plan, 0, self._acomplete_released, None)
        if won is None:
            raise plan.error()
        return self._finish(plan, won[2])

    async def _acomplete_released(self, tries: ModelAttempts) -> ChatResponse | None:
        try:
            return await self._acomplete(tries)
        finally:
            tries.release()

    async def _aopen_route(self, plan: Plan, start: int) -> _AOpened | None:
        """Async twin of `_open_route`."""
        if len(plan.entries) - start < 2 or plan.has_parts:  # see _unhedged
            return await super()._aopen_route(plan, start)
        won = await self._arace(plan, start, self._aopen_held, _aclose_opened)
        if won is None:
            return None
        index, tries, (iterator, first) = won
        return index, tries, iterator, first

    async def _aopen_held(
        self, tries: ModelAttempts
    ) -> tuple[AsyncIterator[StreamChunk], StreamChunk | None] | None:
        opened = None
        try:
            opened = await self._aopen(tries)
            return opened
        finally:
            if opened is None:
                tries.release()  # an opened stream's attempts are released by its reader

    async def _arace(
        self,
        plan: Plan,
        start: int,
        contend: Callable[[ModelAttempts], Coroutine[Any, Any, T | None]],
        discard: Callable[[ModelAttempts, T], Awaitable[None]] | None,
    ) -> tuple[int, ModelAttempts, T] | None:
        """Async twin of `_race`: each contender is a task; losers are cancelled and awaited."""
        import asyncio

        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task[T | None], tuple[int, ModelAttempts]] = {}
        nxt = start
        hedged = False
        hedge_at = delay = 0.0
        try:
            while True:
                if not running:
                    admitted = await self._aadmit(plan, nxt)
                    if admitted is None:
                        return None
                    running[loop.create_task(contend(admitted[1]))] = admitted
                    nxt = admitted[0] + 1
                    if not hedged:
                        delay = self.delay(admitted[1].entry.name)
                        hedge_at = loop.time() + delay
                due = self._hedge_due(plan, len(running), hedged, nxt)
                timeout = max(hedge_at - loop.time(), 0.0) if due else None
                done, _ = await asyncio.wait(
                    running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    hedged = True
                    first = next(iter(running.values()))[1]
                    admitted = await self._ahedge(plan, nxt)
                    if admitted is not None:
                        running[loop.create_task(contend(admitted[1]))] = admitted
                        nxt = admitted[0] + 1
                        hedge = admitted[1].entry.name
                        self.emit(HedgeStarted(first.entry.name, hedge, delay))
                    continue
                for task in sorted(done, key=lambda t: running[t][0]):
                    index, tries = running.pop(task)
                    value = task.result()
                    if value is not None:
                        return index, tries, value
                    if tries.failure is not None and plan.give_up(index, tries.failure, self.emit):
                        return None
        finally:
            await _cancel(running, discard)


def _ticket(breaker: ModelBreaker, entries: Sequence[HasBreaker], lease: float) -> Ticket:
    """The breaker's admission; an open breaker in panic mode may take a trial early."""
    ticket = breaker.admit(lease)
    if ticket is _REJECTED and breaker.panic_threshold:
        return breaker.admit_in_panic(entries, lease)
    return ticket


async def _aticket(breaker: ModelBreaker, entries: Sequence[HasBreaker], lease: float) -> Ticket:
    """Async twin of `_ticket`: awaited only for a shared breaker (``remote``)."""
    if not breaker.remote:
        return _ticket(breaker, entries, lease)
    ticket = await breaker.aadmit(lease)
    if ticket is _REJECTED and breaker.panic_threshold:
        return await breaker.aadmit_in_panic(entries, lease)
    return ticket


def _contend(
    tries: RacingAttempts,
    contend: Callable[[ModelAttempts], T | None],
    discard: Callable[[ModelAttempts, T], None] | None,
    results: queue.SimpleQueue[tuple[RacingAttempts, T | None, BaseException | None]],
) -> None:
    """One contender of a sync race, in its worker thread: report its outcome, or dispose of
    a value nobody waits for any more."""
    try:
        value = contend(tries)
    except BaseException as exc:  # handed to the waiting caller, who re-raises it
        results.put((tries, None, exc))
        return
    if value is None:
        results.put((tries, None, None))
        return
    with tries.lock:
        delivered = not tries.abandoned
        if delivered:  # under the lock: the caller drains what was delivered before abandoning
            results.put((tries, value, None))
    if not delivered and discard is not None:
        discard(tries, value)


def _close_opened(tries: ModelAttempts, opened: tuple[_Source, StreamChunk | None]) -> None:
    opened[0].close()
    tries.release()


async def _aclose_opened(
    tries: ModelAttempts, opened: tuple[AsyncIterator[StreamChunk], StreamChunk | None]
) -> None:
    try:
        await _aclose(opened[0])
    finally:
        tries.release()


async def _cancel(running: dict[Any, Any], discard: Callable[..., Awaitable[None]] | None) -> None:
    """Cancel the losing tasks and wait until each has recorded its cancelled attempt; dispose
    of a value a loser obtained in the same instant as the winner."""
    import asyncio

    tasks = list(running.items())
    running.clear()
    for task, _ in tasks:
        task.cancel()
    if not tasks:
        return
    await asyncio.wait([task for task, _ in tasks])
    for task, (_, tries) in tasks:
        if task.cancelled() or task.exception() is not None:
            continue
        value = task.result()
        if value is not None and discard is not None:
            await discard(tries, value)
