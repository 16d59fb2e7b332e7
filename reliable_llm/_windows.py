"""Sliding windows of recent outcomes: the last N calls, or the last N seconds.

The breaker's failure-rate and slow-call rules read one (resilience4j's ``COUNT_BASED`` and
``TIME_BASED`` sliding windows); the retry budget reads a time window of requests and
retries. Both kinds keep running totals, so adding an outcome and reading the totals cost
O(1) whatever the window's size. They are not thread-safe: their owner locks around them.
"""

from __future__ import annotations

__all__ = ["BUCKETS", "CountWindow", "TimeWindow", "Window"]

BUCKETS = 20
"""Buckets of a `TimeWindow`: it covers between 95% and 100% of its span."""


class CountWindow:
    """The outcomes of the last ``size`` calls, with running totals of each counter.

    An outcome is a tuple of small ints (1 or 0 per counter: say, failed and slow); the
    call itself is counted in ``calls``.
    """

    __slots__ = ("_next", "_ring", "calls", "size", "totals")

    def __init__(self, size: int, counters: int) -> None:
        self.size = size
        self._ring: list[tuple[int, ...] | None] = [None] * size
        self._next = 0
        self.calls = 0
        self.totals = [0] * counters

    def add(self, now: float, outcome: tuple[int, ...]) -> None:
        """Count one call with ``outcome``, forgetting the oldest once the window is full."""
        ring = self._ring
        index = self._next
        totals = self.totals
        old = ring[index]
        if old is None:
            self.calls += 1
        else:
            for i, n in enumerate(old):
                totals[i] -= n
        for i, n in enumerate(outcome):
            totals[i] += n
        ring[index] = outcome
        self._next = (index + 1) % self.size

    def read(self, now: float) -> tuple[int, list[int]]:
        """The calls in the window and the totals of each counter (a copy)."""
        return self.calls, list(self.totals)

    def clear(self) -> None:
        """Forget every outcome."""
        self._ring = [None] * self.size
        self._next = 0
        self.calls = 0
        self.totals = [0] * len(self.totals)


class TimeWindow:
    """What happened in the last ``span`` seconds, counted in `BUCKETS` buckets of time.

    Each bucket holds ``span / BUCKETS`` seconds of calls; a bucket that slides out of the
    window is subtracted from the running totals as time moves on.
    """

    __slots__ = ("_buckets", "_calls", "_head", "_width", "calls", "span", "totals")

    def __init__(self, span: float, counters: int) -> None:
        self.span = span
        self._width = span / BUCKETS
        self._calls = [0] * BUCKETS
        self._buckets = [[0] * counters for _ in range(BUCKETS)]
        self._head: int | None = None  # index (in widths since 0) of the newest bucket
        self.calls = 0
        self.totals = [0] * counters

    def _advance(self, now: float) -> int:
        index = int(now // self._width)
        head = self._head
        if head is None:
            self._head = index
            return index
        if index <= head:
            return head  # a clock read before the newest one lands in the newest bucket
        totals = self.totals
        for stale in range(head + 1, min(index, head + BUCKETS) + 1):
            slot = stale % BUCKETS
            self.calls -= self._calls[slot]
            self._calls[slot] = 0
            bucket = self._buckets[slot]
            for i, n in enumerate(bucket):
                totals[i] -= n
                bucket[i] = 0
        self._head = index
        return index

    def add(self, now: float, outcome: tuple[int, ...]) -> None:
        """Count one call at time ``now`` (seconds) with ``outcome``."""
        slot = self._advance(now) % BUCKETS
        self._calls[slot] += 1
        self.calls += 1
        bucket = self._buckets[slot]
        totals = self.totals
        for i, n in enumerate(outcome):
            bucket[i] += n
            totals[i] += n

    def read(self, now: float) -> tuple[int, list[int]]:
        """The calls in the window ending at ``now`` and the totals of each counter (a copy)."""
        self._advance(now)
        return self.calls, list(self.totals)

    def clear(self) -> None:
        """Forget every outcome."""
        self._calls = [0] * BUCKETS
        self._buckets = [[0] * len(self.totals) for _ in self._buckets]
        self._head = None
        self.calls = 0
        self.totals = [0] * len(self.totals)


Window = CountWindow | TimeWindow
