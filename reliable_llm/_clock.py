"""Time, injected: the manager reads the clock and sleeps only through a `Clock`."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the manager needs of time. Tests pass `reliable_llm.testing.FakeClock`."""

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
