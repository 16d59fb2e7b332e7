"""A fake clock: time moves only when someone sleeps on it or advances it."""

from __future__ import annotations

import asyncio
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A `reliable_llm.Clock` for tests: sleeping advances time instantly and is recorded.

    Example:
        >>> clock = FakeClock()
        >>> clock.sleep(2.5)
        >>> clock.monotonic(), clock.sleeps
        (2.5, [2.5])
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep."""
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it, at once."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def asleep(self, seconds: float) -> None:
        """Record the sleep, advance time by it, and let other tasks run once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now:g})"
