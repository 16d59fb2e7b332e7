"""A bulkhead: at most a set number of calls in flight to one deployment.

resilience4j's semaphore bulkhead (``maxConcurrentCalls``, ``maxWaitDuration``): a call that
finds the bulkhead full is refused at once (the routing layer then tries another deployment),
or, when the routing layer says so, waits for a slot: a thread on an event, a task on a
future of its own loop, woken in turn (first come, first woken) as slots are given back, so a
waiting call costs nothing until a slot frees. The wait's deadline is a time on the manager's
injected clock, measured and bounded there (on a `FakeClock` a waiter times out when the test
moves time past its deadline, and a freed slot wakes it without time moving). A plain lock
and counter rather than a `threading.Semaphore`: the count is readable without a lock
(``least_in_flight`` reads it per request), one bulkhead serves threads and any number of event
loops at once, and the lock is never held while waiting.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from reliable_llm._clock import Clock, wait_event, wait_future
from reliable_llm._errors import ConfigurationError

if TYPE_CHECKING:
    from reliable_llm._groupwait import GroupQueue

__all__ = ["Bulkhead", "check_max_concurrent_calls"]


def check_max_concurrent_calls(value: object) -> int | None:
    """``value`` as a bulkhead size: None (no limit) or a positive int.

    Raises:
        ConfigurationError: Anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"max_concurrent_calls must be a positive int or None for no limit, got {value!r}"
        )
    return value


class Bulkhead:
    """Counts the calls in flight to one deployment and refuses those beyond ``limit``.

    With ``limit`` None it only counts. ``in_flight`` is the number of calls holding a slot;
    its highest value so far is ``peak``.
    """

    __slots__ = ("_lock", "_waiters", "group", "in_flight", "limit", "peak")

    def __init__(self, limit: int | None) -> None:
        self.limit = check_max_concurrent_calls(limit)
        self._lock = threading.Lock()
        self._waiters: deque[Callable[[], None]] = deque()  # how to wake each waiting call
        self.in_flight = 0
        self.peak = 0
        self.group: GroupQueue | None = None  # set by a group of several deployments

    def try_acquire(self) -> bool:
        """Take a slot if one is free; True when taken (then `release` it exactly once)."""
        with self._lock:
            n = self.in_flight
            limit = self.limit
            if limit is not None and n >= limit:
                return False
            self.in_flight = n = n + 1
            if n > self.peak:
                self.peak = n
            return True

    def release(self) -> None:
        """Give back a slot taken by `try_acquire` (or a wait), waking the longest waiter."""
        with self._lock:
            self.in_flight -= 1
            wake = self._waiters.popleft() if self._waiters else None
            # Read under this lock: a group waiter queues before it looks for a slot here
            # (under this lock too), so it is either seen queued now or sees the slot free.
            group = self.group if self.group is not None and self.group.waiting() else None
        if wake is not None:
            wake()  # outside the lock: it may take the lock (or a loop's) itself
        elif group is not None:
            group.wake_one()

    def _take_or_queue(self, wake: Callable[[], None], again: bool) -> bool:
        """Take a slot if one is free, else queue ``wake`` for the next release (at the
        front when the waiter was woken but beaten to the slot: it keeps its turn)."""
        with self._lock:
            n = self.in_flight
            if self.limit is None or n < self.limit:
                self.in_flight = n = n + 1
                if n > self.peak:
                    self.peak = n
                return True
            if again:
                self._waiters.appendleft(wake)
            else:
                self._waiters.append(wake)
            return False

    def _pass_on(self) -> None:
        """Wake the next waiter in place of one that can no longer use its wake-up."""
        with self._lock:
            passed = self._waiters.popleft() if self._waiters else None
        if passed is not None:
            passed()
        elif self.group is not None:
            self.group.wake_one()

    def _withdraw(self, wake: Callable[[], None]) -> None:
        """A waiter gives up: leave the queue, or, if a release already woke it, pass the
        wake-up on so the freed slot does not go unnoticed."""
        with self._lock:
            try:
                self._waiters.remove(wake)
                return
            except ValueError:
                pass
        self._pass_on()

    def wait(self, clock: Clock, deadline: float) -> bool:
        """Take a slot, waiting for one until ``clock`` reads ``deadline``; True when taken.

        A slot given back wakes the waiter at once; the deadline is measured and bounded on
        ``clock`` (see `reliable_llm._clock.wait_event`). However the wait ends (taken, time
        up, ``KeyboardInterrupt``), the waiter leaves the queue.
        """
        again = False
        while True:
            event = threading.Event()
            if self._take_or_queue(event.set, again):
                return True
            again = True
            try:
                wait_event(clock, event, deadline)
            except BaseException:  # KeyboardInterrupt while waiting: leave the queue
                self._withdraw(event.set)
                raise
            if clock.monotonic() >= deadline:
                self._withdraw(event.set)
                return False
            # Before the deadline only a release sets the event (and took it off the queue).

    async def await_slot(self, clock: Clock, deadline: float) -> bool:
        """Async twin of `wait`: the task waits on its own loop, never blocking it; a
        cancelled task leaves the queue and stays cancelled."""
        import asyncio

        loop = asyncio.get_running_loop()
        again = False
        while True:
            future: asyncio.Future[None] = loop.create_future()

            def wake(future: asyncio.Future[None] = future) -> None:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # its loop has closed: the slot goes to the next waiter
                    self._pass_on()

            if self._take_or_queue(wake, again):
                return True
            again = True
            try:
                await wait_future(clock, future, deadline)
            except BaseException:  # cancelled while waiting: leave the queue, stay cancelled
                self._withdraw(wake)
                raise
            if clock.monotonic() >= deadline:
                self._withdraw(wake)
                return False
            # Before the deadline only a release resolves the future (and took it off the queue).

    def snapshot(self) -> dict[str, int | None]:
        """Limit, calls in flight and the peak so far, for `LLMManager.get_model_info`."""
        return {"max_concurrent_calls": self.limit, "in_flight": self.in_flight, "peak": self.peak}

    def __repr__(self) -> str:
        return f"Bulkhead(in_flight={self.in_flight}, limit={self.limit})"


def _resolve(future: object) -> None:
    if not future.done():  # type: ignore[attr-defined]
        future.set_result(None)  # type: ignore[attr-defined]
