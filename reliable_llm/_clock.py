"""Time, injected: the manager reads the clock, sleeps and waits only through a `Clock`."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import asyncio

__all__ = ["Clock", "SystemClock", "wait_event", "wait_future"]


@runtime_checkable
class Clock(Protocol):
    """What the manager needs of time. Tests pass `reliable_llm.testing.FakeClock`.

    A wait that something else may end early (a call waiting at a full bulkhead for a slot)
    is bounded on the clock: by its ``call_at(when, callback)`` alarm if it has one (as
    `FakeClock` does: its time only moves when a test moves it), else by real-time waits
    re-checked against `monotonic` until it reads the deadline.
    """

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` without blocking the event loop."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.sleep` and `asyncio.sleep`."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        import asyncio  # imported on first use: it costs ~30 ms, a third of our import budget

        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


def wait_event(clock: Clock, event: threading.Event, deadline: float) -> None:
    """Block until ``event`` is set or ``clock`` reads ``deadline`` (clock seconds).

    The caller tells which by reading the clock. On a clock with alarms (`FakeClock`) the
    alarm sets ``event``; otherwise the thread waits in real seconds, again if it woke early.
    """
    call_at: Any = getattr(clock, "call_at", None)
    if call_at is None:
        while not event.is_set():
            left = deadline - clock.monotonic()
            if left <= 0 or event.wait(left):
                return
        return
    alarm = call_at(deadline, event.set)
    try:
        event.wait()  # interruptible: a signal handler's KeyboardInterrupt ends it
    finally:
        alarm.cancel()


async def wait_future(clock: Clock, future: asyncio.Future[None], deadline: float) -> None:
    """Suspend until ``future`` is done or ``clock`` reads ``deadline`` (clock seconds).

    The caller tells which by reading the clock. A cancellation of the waiting task cancels
    ``future`` too. On a clock with alarms (`FakeClock`) the alarm, rung from any thread,
    resolves ``future`` on its loop; otherwise the loop's own timer ends the wait, in real
    seconds, again if it ended early.
    """
    import asyncio

    loop = future.get_loop()
    call_at: Any = getattr(clock, "call_at", None)
    if call_at is None:
        while not future.done():
            left = deadline - clock.monotonic()
            if left <= 0:
                return
            try:  # leaves ``future`` pending when the time is up
                await asyncio.wait((future,), timeout=left)
            except BaseException:
                future.cancel()
                raise
        return

    def ring() -> None:
        with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, future)

    alarm = call_at(deadline, ring)
    try:
        await future
    finally:
        alarm.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
