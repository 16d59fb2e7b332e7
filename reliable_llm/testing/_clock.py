"""A fake clock: time moves only when someone sleeps on it or advances it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

__all__ = ["FakeClock"]


class FakeClock:
    """A `reliable_llm.Clock` for tests: sleeping advances time instantly and is recorded.

    Waits that something else can end early (a call waiting at a full bulkhead for a slot)
    do not advance time: they set an alarm with `call_at` and end when a slot frees or when
    the test moves time past their deadline (`advance`, or anyone's `sleep`).

    Example:
        >>> clock = FakeClock()
        >>> clock.sleep(2.5)
        >>> clock.monotonic(), clock.sleeps
        (2.5, [2.5])
        >>> rang = []
        >>> alarm = clock.call_at(4.0, lambda: rang.append(clock.monotonic()))
        >>> clock.advance(1.0); rang
        []
        >>> clock.advance(1.0); rang
        [4.5]
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._alarms: dict[int, tuple[float, Callable[[], object]]] = {}
        self._next_alarm = 0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep; alarms now due ring."""
        with self._lock:
            self._now += seconds
            due = self._due()
        for callback in due:
            callback()

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it, at once; alarms now due ring."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
            due = self._due()
        for callback in due:
            callback()

    async def asleep(self, seconds: float) -> None:
        """Record the sleep, advance time by it, and let other tasks run once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeAlarm:
        """Call ``callback()`` once the clock reads ``when`` (seconds) or later.

        It runs in the thread that moves time past ``when`` (in `advance` or `sleep`, after
        the clock's lock is released, earliest alarm first), or at once, here, if ``when`` has
        passed already. Named after `asyncio.loop.call_at`.

        Returns:
            The alarm; its ``cancel()`` stops a callback that has not run yet.
        """
        with self._lock:
            if when > self._now:
                key = self._next_alarm
                self._next_alarm = key + 1
                self._alarms[key] = (when, callback)
                return FakeAlarm(self, key)
        callback()
        return FakeAlarm(self, -1)

    def _cancel(self, key: int) -> None:
        with self._lock:
            self._alarms.pop(key, None)

    def _due(self) -> list[Callable[[], object]]:
        """Take the alarms whose time has come, earliest first (the lock is held)."""
        alarms = self._alarms
        if not alarms:
            return []
        now = self._now
        due = sorted((when, key) for key, (when, _) in alarms.items() if when <= now)
        return [alarms.pop(key)[1] for _, key in due]

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now:g})"


class FakeAlarm:
    """A callback set on a `FakeClock` with `FakeClock.call_at`."""

    __slots__ = ("_clock", "_key")

    def __init__(self, clock: FakeClock, key: int) -> None:
        self._clock = clock
        self._key = key

    def cancel(self) -> None:
        """Stop the callback from running, if it has not run yet."""
        self._clock._cancel(self._key)
