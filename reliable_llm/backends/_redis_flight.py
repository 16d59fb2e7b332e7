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
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from reliable_llm._clock import Clock
from reliable_llm._singleflight import FlightTimeout
from reliable_llm.backends._redis_link import Link, kept
from reliable_llm.backends._redis_pipeline import (
    FOLLOW,
    HIT,
    LEAD,
    Preadmitted,
    ascript,
    script,
    void_key,
    void_later,
    void_now,
    void_soon,
)

if TYPE_CHECKING:
    from reliable_llm._breaker import ModelBreaker
    from reliable_llm.backends._redis_cache import RedisCache

__all__ = ["Begun", "SharedFlight"]

T = TypeVar("T")
_FIRST_POLL = 0.005  # seconds; doubled up to _LAST_POLL while waiting
_LAST_POLL = 0.1


class Begun:
    """What a request's first round trip (`SharedFlight.begin`) found.

    ``entry``: the cached answer (a hit). ``token``: this caller leads the fleet's flight
    and must `SharedFlight.finish` it. Neither: another process leads (follow it with
    `SharedFlight.join`). ``pre``: the first model's admission, offered to the engine; the
    server closes it when the request is done (`close`).
    """

    __slots__ = ("entry", "pre", "token")

    def __init__(
        self,
        entry: Mapping[str, Any] | None = None,
        token: str | None = None,
        pre: Preadmitted | None = None,
    ) -> None:
        self.entry = entry
        self.token = token
        self.pre = pre

    def close(self) -> None:
        """Withdraw the pre-admission; a trial the engine never took frees the fleet's slot."""
        if self.pre is not None:
            self.pre.close()


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
        self,
        key: str,
        deadline: float,
        clock: Clock,
        lookup: Callable[[], T | None],
        follow: bool = False,
    ) -> tuple[str | None, T | None]:
        """Lead the fleet's flight for ``key``, or wait for the leader's cached answer.

        Returns ``(token, None)`` to the leader, who must `release` it; ``(None, answer)``
        to a follower whose leader's answer reached the cache (``lookup`` found it); and
        ``(None, None)`` when Redis is unavailable (run on your own). ``follow``: another
        holds the lease already (`begin` said so): wait one poll before asking.

        Raises:
            FlightTimeout: ``deadline`` (seconds on ``clock``) passed while waiting.
        """
        link = self._link
        name = self._prefix + key
        poll = _FIRST_POLL
        if follow:
            left = deadline - clock.monotonic()
            if left <= 0:
                raise FlightTimeout
            clock.sleep(min(poll, left))
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
        follow: bool = False,
    ) -> tuple[str | None, T | None]:
        """Async twin of `join` (redis-py's asyncio client; waits never block the loop)."""
        link = self._link
        name = self._prefix + key
        poll = _FIRST_POLL
        if follow:
            left = deadline - clock.monotonic()
            if left <= 0:
                raise FlightTimeout
            await clock.asleep(min(poll, left))
        while True:
            if not link.usable():
                return None, None
            token = link.token()
            try:
                taken = await kept(link.aclient().set(name, token, nx=True, px=self._ms()))
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

    # -- one round trip before, one after -------------------------------------------------------

    def covers(self, cache: object) -> bool:
        """Whether ``cache`` is the shared cache of this Redis, read and written by
        `begin` and `finish` in the same round trips as the lease."""
        from reliable_llm.backends._redis_cache import RedisCache

        return isinstance(cache, RedisCache) and cache._link is self._link

    def _begin(
        self,
        key: str,
        cache: RedisCache,
        breaker: ModelBreaker,
        lease: float,
        token: str,
        flight: bool,
    ) -> tuple[tuple[str, ...], tuple[object, ...], Any]:
        """BEGIN's keys and arguments, and the breaker asked to admit (None: not asked)."""
        link = self._link
        keys: tuple[str, ...] = (cache.name(key), self._prefix + key)
        args: tuple[object, ...] = (token, self._ms() if flight else 0)
        from reliable_llm.backends._redis_breaker import SharedBreaker

        admits = None
        if isinstance(breaker, SharedBreaker) and breaker._link is link:
            breaker_keys = breaker.admission_keys()
            if breaker_keys is not None:
                admits = breaker
                keys += breaker_keys
                args += (max(int(lease * 1000), 1),)
        return (*keys, void_key(link, token)), args, admits

    def _leases(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        """The leases a BEGIN with ``keys`` may grant: the flight's and the trial's."""
        return keys[1:2] + keys[3:4] if len(keys) > 3 else keys[1:2]

    def _begun(
        self,
        raw: list[Any],
        keys: tuple[str, ...],
        args: tuple[object, ...],
        admits: Any,
        token: str,
        lease: float,
    ) -> Begun | None:
        code = int(raw[0])
        if code == FOLLOW:
            return Begun()
        if code != LEAD:
            return None  # (never: a voided BEGIN has no caller left)
        name = keys[1]
        held = args[1] != 0  # a stream's begin takes no lease
        if held:
            self._hold(name, token)
        if admits is None:
            return Begun(token=token if held else None)
        try:
            pre = admits.preadmit(raw[1:], token, lease)
            return Begun(token=token if held else None, pre=pre)
        except BaseException:  # a transition listener failed: free what BEGIN granted
            with self._lock:
                self._held.pop(name, None)
            self._void(token, keys, lease)
            raise

    def _void(self, token: str, keys: tuple[str, ...], lease: float, soon: bool = False) -> None:
        """Free the leases a BEGIN with ``keys`` granted ``token``: from a task on a loop,
        from a thread when ``soon``, else before returning."""
        from asyncio import _get_running_loop

        ms = max(self._ms(), int(lease * 1000))
        if soon:
            void_soon(self._link, token, self._leases(keys), ms)
        elif _get_running_loop() is None:
            void_now(self._link, token, self._leases(keys), ms)
        else:
            void_later(self._link, token, self._leases(keys), ms)

    def begin(
        self,
        key: str,
        cache: RedisCache,
        breaker: ModelBreaker,
        lease: float,
        flight: bool = True,
    ) -> Begun | None:
        """One round trip: read the cache entry under ``key``; on a miss take the flight's
        lease (unless ``flight`` is False: a stream) and, when ``breaker`` (the route's first
        model's) is shared, its admission for an attempt of at most ``lease`` seconds. None
        when Redis is unavailable (go on with this process's cache, on your own).

        Raises:
            ValueError: The entry is not a JSON object (it was evicted; a miss).
        """
        link = self._link
        if not link.usable():
            return None
        token = link.token()
        keys, args, admits = self._begin(key, cache, breaker, lease, token, flight)
        try:
            raw = script(link, "BEGIN")(keys=keys, args=args)
        except link.errors as exc:
            link.failed(exc)
            self._void(token, keys, lease, soon=True)  # it may run late
            return None
        except BaseException:  # interrupted on the wire: free what it may have been granted
            self._void(token, keys, lease)
            raise
        link.succeeded()
        if int(raw[0]) == HIT:
            return Begun(entry=cache.decoded(key, raw[1]))
        return self._begun(raw, keys, args, admits, token, lease)

    async def abegin(
        self,
        key: str,
        cache: RedisCache,
        breaker: ModelBreaker,
        lease: float,
        flight: bool = True,
    ) -> Begun | None:
        """Async twin of `begin`: a task cancelled (or a call timed out) while BEGIN is on
        the wire frees what it may have been granted, from a task of its loop."""
        link = self._link
        if not link.usable():
            return None
        token = link.token()
        keys, args, admits = self._begin(key, cache, breaker, lease, token, flight)
        try:
            raw = await ascript(link, "BEGIN", keys, args)
        except BaseException as exc:
            self._void(token, keys, lease)
            if not isinstance(exc, link.errors):
                raise
            link.failed(exc)
            return None
        link.succeeded()
        if int(raw[0]) == HIT:
            return Begun(entry=await cache.adecoded(key, raw[1]))
        return self._begun(raw, keys, args, admits, token, lease)

    def _finish(
        self,
        key: str,
        token: str,
        cache: RedisCache,
        value: Mapping[str, Any] | None,
        ttl: float | None,
    ) -> tuple[tuple[str, str], tuple[str, str, str], ValueError | None]:
        name = self._prefix + key
        with self._lock:
            self._held.pop(name, None)
        text = px = ""
        error = None
        if value is not None:
            try:
                text, ms = cache.stage(key, value, ttl)
            except ValueError as exc:  # not JSON-encodable: the lease is freed all the same
                error = exc
            else:
                px = "" if ms is None else str(ms)
        return (cache.name(key), name), (token, text, px), error

    def finish(
        self,
        key: str,
        token: str,
        cache: RedisCache,
        value: Mapping[str, Any] | None,
        ttl: float | None,
    ) -> None:
        """One round trip: cache ``value`` (None: nothing to cache) for ``ttl`` seconds and
        free the lease ``token`` holds.

        Raises:
            ValueError: ``value`` cannot be stored as JSON (the lease is freed).
        """
        keys, args, error = self._finish(key, token, cache, value, ttl)
        link = self._link
        if link.usable():
            try:
                script(link, "FINISH")(keys=keys, args=args)
            except link.errors as exc:
                link.failed(exc)  # the lease expires on its own
            else:
                link.succeeded()
        if error is not None:
            raise error

    async def afinish(
        self,
        key: str,
        token: str,
        cache: RedisCache,
        value: Mapping[str, Any] | None,
        ttl: float | None,
    ) -> None:
        """Async twin of `finish`."""
        keys, args, error = self._finish(key, token, cache, value, ttl)
        link = self._link
        if link.usable():
            try:
                await ascript(link, "FINISH", keys, args)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
        if error is not None:
            raise error
