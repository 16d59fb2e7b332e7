"""Single flight across processes: identical requests in flight anywhere make one upstream call.

The leader holds a short lease on the cache key (``SET NX PX``), prolonged every third of its
length by one renewer thread per process while the leader works, and freed (only by its
holder) once the answer is cached or the leader gave up. Followers poll the cache within
their own deadline; when the lease disappears without an answer (the leader failed, or its
process died and the lease expired), one of them takes the lease and calls the model itself.
While Redis is unavailable each process runs on its own (the in-process single flight still
joins its own identical requests).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from reliable_llm._clock import Clock
from reliable_llm._singleflight import FlightTimeout
from reliable_llm.backends._redis_link import Link

__all__ = ["SharedFlight"]

T = TypeVar("T")
_FIRST_POLL = 0.005  # seconds; doubled up to _LAST_POLL while waiting
_LAST_POLL = 0.1


class SharedFlight:
    """Leases on cache keys in Redis (built by `RedisState`)."""

    def __init__(self, link: Link, lease: float) -> None:
        self._link = link
        self._lease = lease
        self._prefix = f"{link.namespace}:flight:"
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # lease key -> token, prolonged by the renewer
        self._renewer: threading.Thread | None = None
        self._wake = threading.Event()

    def _ms(self) -> int:
        return max(int(self._lease * 1000), 1)

    # -- leading --------------------------------------------------------------------------------

    def _hold(self, name: str, token: str) -> None:
        with self._lock:
            self._held[name] = token
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew, name="reliable-llm-flight-leases", daemon=True
                )
                self._renewer.start()

    def _renew(self) -> None:
        link = self._link
        while True:
            self._wake.wait(self._lease / 3)
            with self._lock:
                held = dict(self._held)
                if not held:
                    self._renewer = None
                    return
            if not link.usable():
                continue
            try:
                link.lease_renew(keys=tuple(held), args=(self._ms(), *held.values()))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    def release(self, key: str, token: str) -> None:
        """Free the lease (after the answer was cached, or the leader gave up)."""
        name = self._prefix + key
        with self._lock:
            self._held.pop(name, None)
        link = self._link
        if link.usable():
            try:
                link.lease_release(keys=(name,), args=(token,))
            except link.errors as exc:
                link.failed(exc)  # it expires on its own
            else:
                link.succeeded()

    async def arelease(self, key: str, token: str) -> None:
        """Async twin of `release`."""
        name = self._prefix + key
        with self._lock:
            self._held.pop(name, None)
        link = self._link
        if link.usable():
            try:
                await link.ascript("LEASE_RELEASE", (name,), (token,))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    # -- joining --------------------------------------------------------------------------------

    def join(
        self, key: str, deadline: float, clock: Clock, lookup: Callable[[], T | None]
    ) -> tuple[str | None, T | None]:
        """Lead the fleet's flight for ``key``, or wait for the leader's cached answer.

        Returns ``(token, None)`` to the leader, who must `release` it; ``(None, answer)``
        to a follower whose leader's answer reached the cache (``lookup`` found it); and
        ``(None, None)`` when Redis is unavailable (run on your own).

        Raises:
            FlightTimeout: ``deadline`` (seconds on ``clock``) passed while waiting.
        """
        link = self._link
        name = self._prefix + key
        poll = _FIRST_POLL
        while True:
            if not link.usable():
                return None, None
            token = link.token()
            try:
                taken = link.client.set(name, token, nx=True, px=self._ms())
            except link.errors as exc:
                link.failed(exc)
                return None, None
            link.succeeded()
            if taken:
                self._hold(name, token)
                return token, None
            answer = lookup()
            if answer is not None:
                return None, answer
            left = deadline - clock.monotonic()
            if left <= 0:
                raise FlightTimeout
            clock.sleep(min(poll, left))
            poll = min(poll * 2, _LAST_POLL)

    async def ajoin(
        self,
        key: str,
        deadline: float,
        clock: Clock,
        lookup: Callable[[], Awaitable[T | None]],
    ) -> tuple[str | None, T | None]:
        """Async twin of `join` (redis-py's asyncio client; waits never block the loop)."""
        link = self._link
        name = self._prefix + key
        poll = _FIRST_POLL
        while True:
            if not link.usable():
                return None, None
            token = link.token()
            try:
                taken = await link.aclient().set(name, token, nx=True, px=self._ms())
            except link.errors as exc:
                link.failed(exc)
                return None, None
            link.succeeded()
            if taken:
                self._hold(name, token)
                return token, None
            answer = await lookup()
            if answer is not None:
                return None, answer
            left = deadline - clock.monotonic()
            if left <= 0:
                raise FlightTimeout
            await clock.asleep(min(poll, left))
            poll = min(poll * 2, _LAST_POLL)
