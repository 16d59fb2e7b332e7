"""The callers of a deployment group waiting for room on any of its deployments.

When no deployment of a group can take a call (every bulkhead full), a caller waits on the
GROUP, not on one deployment: the first slot given back on any deployment wakes the longest
waiter (first come, first woken), which then takes a slot of its own deployment if that one
has room, or else leaves to be routed to the deployment that has (see
`reliable_llm._capacity`). A deployment at a rate limit has room again at a known time: the
wait also ends at the earliest such time of any deployment of the group.

No wake-up is lost: a caller queues before it looks for room (a slot given back after the
look wakes it), and a caller that leaves the queue after it was woken without using the
wake-up (time up, ``KeyboardInterrupt``, cancellation) passes it on to the next waiter.
Waits are bounded on the manager's injected clock (`reliable_llm._clock.wait_event`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from reliable_llm._clock import Clock, wait_event, wait_future

if TYPE_CHECKING:
    from reliable_llm._bulkhead import Bulkhead

__all__ = ["GroupQueue", "HasRoom"]


class HasRoom(Protocol):
    """What the queue asks of its group (a `DeploymentGroup`)."""

    def room_elsewhere(self, bulkhead: Bulkhead, now: float) -> bool:
        """Whether a deployment other than the one behind ``bulkhead`` has room now."""
        ...

    def next_ready(self, now: float) -> float:
        """The earliest clock time after ``now`` a rate-limited deployment has room (inf)."""
        ...


class GroupQueue:
    """The waiters of one deployment group, woken in turn as slots are given back anywhere.

    Every bulkhead of the group holds this queue (``Bulkhead.group``) and calls `wake_one`
    when it gives a slot back and has no waiter of its own.
    """

    __slots__ = ("_group", "_lock", "_waiters")

    def __init__(self, group: HasRoom) -> None:
        self._group = group
        self._lock = threading.Lock()
        self._waiters: deque[Callable[[], None]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def waiting(self) -> bool:
        """Whether anyone waits (read without the lock; see `Bulkhead.release`)."""
        return bool(self._waiters)

    def wake_one(self) -> None:
        """A slot was given back on some deployment of the group: wake the longest waiter."""
        with self._lock:
            wake = self._waiters.popleft() if self._waiters else None
        if wake is not None:
            wake()  # outside the lock: it may take a lock (or a loop's) itself

    def _queue(self, wake: Callable[[], None], again: bool) -> None:
        with self._lock:  # at the front when woken before and beaten to the slot
            if again:
                self._waiters.appendleft(wake)
            else:
                self._waiters.append(wake)

    def _leave(self, wake: Callable[[], None]) -> bool:
        """Leave the queue; True when a wake-up already took this waiter off it."""
        with self._lock:
            try:
                self._waiters.remove(wake)
            except ValueError:
                return True
            return False

    def _give_up(self, wake: Callable[[], None]) -> None:
        """Leave without using a wake-up: pass one received on, so no freed slot idles."""
        if self._leave(wake):
            self.wake_one()

    def _look(self, bulkhead: Bulkhead, clock: Clock, deadline: float) -> bool | float:
        """After queueing: True (a slot of ``bulkhead`` taken), False (room elsewhere or
        time up), or the clock time to wait until."""
        if bulkhead.try_acquire():
            return True
        now = clock.monotonic()
        if now >= deadline or self._group.room_elsewhere(bulkhead, now):
            return False
        return min(deadline, self._group.next_ready(now))

    def wait(self, bulkhead: Bulkhead, clock: Clock, deadline: float) -> bool:
        """Take a slot of ``bulkhead`` (one deployment's), waiting on the group until a slot
        frees anywhere in it, a rate-limited deployment has room, or ``clock`` reads
        ``deadline``. True when a slot was taken; False when time is up or another
        deployment has room (the caller is routed there).
        """
        again = False
        while True:
            event = threading.Event()
            self._queue(event.set, again)
            try:
                looked = self._look(bulkhead, clock, deadline)
                if looked is True or looked is False:
                    self._give_up(event.set)  # a wake-up since it looked is not its own
                    return looked
                wait_event(clock, event, looked)
            except BaseException:  # KeyboardInterrupt while waiting: leave the queue
                self._give_up(event.set)
                raise
            # Woken (the wake-up is its own: it looks again) or timed: back at the front.
            self._leave(event.set)
            again = True

    async def await_slot(self, bulkhead: Bulkhead, clock: Clock, deadline: float) -> bool:
        """Async twin of `wait`: the task waits on its own loop, never blocking it; a
        cancelled task leaves the queue (passing on a wake-up it got) and stays cancelled."""
        import asyncio

        loop = asyncio.get_running_loop()
        again = False
        while True:
            future: asyncio.Future[None] = loop.create_future()

            def wake(future: asyncio.Future[None] = future) -> None:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # its loop has closed: the wake-up goes to the next
                    self.wake_one()

            self._queue(wake, again)
            try:
                looked = self._look(bulkhead, clock, deadline)
                if looked is True or looked is False:
                    self._give_up(wake)
                    return looked
                await wait_future(clock, future, looked)
            except BaseException:  # cancelled while waiting: leave the queue, stay cancelled
                self._give_up(wake)
                raise
            self._leave(wake)
            again = True

    def __repr__(self) -> str:
        return f"GroupQueue(waiting={len(self._waiters)})"


def _resolve(future: object) -> None:
    if not future.done():  # type: ignore[attr-defined]
        future.set_result(None)  # type: ignore[attr-defined]
