"""Identical requests in flight at the same time share one upstream call.

Only successes are shared: a follower whose leader failed or was cancelled goes on to make
the call itself (and may lead the next flight). Each follower waits no longer than its own
deadline. A call made while leading a flight (a model, or a hook, calling back into the
manager with the same request) never waits on its own flight: it runs on its own.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["Flight", "SingleFlight"]

T = TypeVar("T")

# The flights the current thread / task (and the worker threads it starts) is leading.
_LEADING: contextvars.ContextVar[frozenset[Hashable]] = contextvars.ContextVar(
    "reliable_llm_leading", default=frozenset()
)


class FlightTimeout(Exception):
    """A follower's deadline passed while it waited for its leader."""


class Flight(Generic[T]):
    """One flight: the leader's handle to publish the result and land the flight."""

    __slots__ = ("_done", "_future", "_owner", "_slot", "_token", "result")

    def __init__(self, owner: SingleFlight[T], slot: Hashable) -> None:
        self._owner = owner
        self._slot = slot
        self.result: T | None = None
        self._done: threading.Event | None = None
        self._future: asyncio.Future[T | None] | None = None
        self._token: contextvars.Token[frozenset[Hashable]] | None = None

    def land(self) -> None:
        """End the flight (in the leader's ``finally``): followers get the result, or None."""
        if self._token is not None:
            _LEADING.reset(self._token)
            self._token = None
        self._owner._land(self)


class SingleFlight(Generic[T]):
    """Per key, at most one leader at a time; followers wait for its success."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Flight[T]] = {}

    def _lead(self, slot: Hashable) -> Flight[T]:
        flight = self._flights[slot] = Flight(self, slot)
        flight._token = _LEADING.set(_LEADING.get() | {slot})
        return flight

    def _land(self, flight: Flight[T]) -> None:
        with self._lock:
            if self._flights.get(flight._slot) is flight:
                del self._flights[flight._slot]
        if flight._done is not None:
            flight._done.set()
        future = flight._future
        if future is not None and not future.done():
            future.set_result(flight.result)

    def join(self, key: Hashable, timeout: float) -> tuple[Flight[T] | None, T | None]:
        """Lead a flight for ``key`` or wait for the one in the air.

        Returns ``(flight, None)`` to the leader, who must call ``flight.land()`` when done;
        ``(None, result)`` to a follower whose leader succeeded; ``(None, None)`` when the
        caller should run on its own (re-entrant call).

        Raises:
            FlightTimeout: ``timeout`` seconds passed while waiting for the leader.
        """
        if key in _LEADING.get():
            return None, None
        while True:
            with self._lock:
                flight = self._flights.get(key)
                if flight is None:
                    return self._lead(key), None
                done = flight._done
                if done is None:
                    done = flight._done = threading.Event()
            if not done.wait(timeout):
                raise FlightTimeout
            if flight.result is not None:
                return None, flight.result
            # The leader failed or was cancelled: take the lead, or follow the new leader.

    async def ajoin(self, key: Hashable, timeout: float) -> tuple[Flight[T] | None, T | None]:
        """Async twin of `join`, per event loop (followers never block the loop)."""
        import asyncio  # deferred: keeps `import reliable_llm` fast

        loop = asyncio.get_running_loop()
        slot = (loop, key)
        if slot in _LEADING.get():
            return None, None
        while True:
            with self._lock:
                flight = self._flights.get(slot)
                if flight is None:
                    return self._lead(slot), None
                future = flight._future
                if future is None:
                    future = flight._future = loop.create_future()
            done, _ = await asyncio.wait((future,), timeout=timeout)
            if not done:
                raise FlightTimeout
            result = future.result()
            if result is not None:
                return None, result
