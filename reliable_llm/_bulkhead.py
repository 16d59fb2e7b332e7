"""A bulkhead: at most a set number of calls in flight to one deployment.

resilience4j's semaphore bulkhead (``maxConcurrentCalls``), without its blocking wait: a call
that finds the bulkhead full is refused at once, and the routing layer sends it to another
deployment or has it wait within its deadline (`reliable_llm._gate`). A plain lock and
counter rather than a `threading.Semaphore`: the same guarantee at a fraction of the cost
(``Semaphore`` is pure Python around a ``Condition``), the count is readable without a lock
(``least_in_flight`` reads it per request), and the lock is never held while waiting, so it
is safe from threads and on an event loop alike.
"""

from __future__ import annotations

import threading

from reliable_llm._errors import ConfigurationError

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

    __slots__ = ("_lock", "in_flight", "limit", "peak")

    def __init__(self, limit: int | None) -> None:
        self.limit = check_max_concurrent_calls(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

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
        """Give back a slot taken by `try_acquire`."""
        with self._lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, int | None]:
        """Limit, calls in flight and the peak so far, for `LLMManager.get_model_info`."""
        return {"max_concurrent_calls": self.limit, "in_flight": self.in_flight, "peak": self.peak}

    def __repr__(self) -> str:
        return f"Bulkhead(in_flight={self.in_flight}, limit={self.limit})"
