"""The connection to Redis and its health: bounded timeouts, one report per outage, probes.

Redis is never a single point of failure: every call to it is bounded by a socket timeout of
a few milliseconds, and the first error opens an outage. During an outage nobody calls Redis
(requests use this process's own breakers and cache) except one probe at a time, spaced
with exponential backoff; the first call that succeeds ends the outage. Each outage is
reported once, as a `SharedStateDegraded` event and a warning, and its end as a
`SharedStateRecovered` event. Events are emitted with no lock held.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from reliable_llm._clock import Clock, SystemClock
from reliable_llm._events import Event, SharedStateDegraded, SharedStateRecovered
from reliable_llm.backends import _redis_lua as lua
from reliable_llm.backends import _redis_lua_windows as lua_windows

if TYPE_CHECKING:
    import asyncio

__all__ = ["Link"]

logger = logging.getLogger("reliable_llm")

Emit = Callable[[Event], None]

_BREAKER_SCRIPTS = ("ADMIT", "FAILURE", "SUCCESS", "NEUTRAL", "PEEK", "RESET")
_WINDOW_SCRIPTS = ("WINDOW_OUTCOME", "WINDOW_PEEK", "PANIC")


def _source(name: str) -> str:
    """The Lua text of the script ``name`` (`_redis_lua`, or `_redis_lua_windows`)."""
    module = lua_windows if name in _WINDOW_SCRIPTS else lua
    return str(getattr(module, name))


def _redis() -> Any:
    try:
        import redis
    except ImportError:
        from reliable_llm._errors import ConfigurationError

        raise ConfigurationError(
            "RedisState needs redis-py: pip install 'reliable-llm[redis]'"
        ) from None
    return redis


_NO_CONNECTION = ("No connection available.",)

TIMEOUTS_FOR_OUTAGE = 3
"""Redis calls in a row that must time out (none answered between them) to start an outage."""

T = TypeVar("T")


async def kept(call: Awaitable[T]) -> T:
    """Await a redis-py asyncio call without losing a cancellation that arrives meanwhile.

    redis-py's asyncio client may absorb a cancellation to keep its connection in step with
    the server, and return the reply as if nothing happened; the request would then go on
    (and call the model) although its task was cancelled, or its ``asyncio.timeout`` ran
    out. A cancellation requested during the call (`asyncio.Task.cancelling` grew) is raised
    here, after the reply, so the caller's cleanup (freeing what the reply granted) runs.
    """
    import asyncio

    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    result = await call
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError
    return result


def _owning(client: Any) -> Any:
    """``client``, made to close its own pool (as ``Redis.from_url``'s clients do)."""
    client.auto_close_connection_pool = True
    return client


class Link:
    """Sync and asyncio Redis clients for one URL, the registered scripts, and the health."""

    def __init__(
        self,
        url: str,
        namespace: str,
        timeout: float,
        probe_backoff: tuple[float, float],
        max_connections: int = 16,
        connect_timeout: float = 0.1,
    ) -> None:
        redis = _redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.namespace = namespace
        self._url = url
        self._options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "health_check_interval": 0,
        }
        # No client-side retries: a failed call is an outage, handled once, here. At most
        # ``max_connections`` connections (per process, and per event loop for asyncio); a
        # call waits up to ``timeout`` for one, then decides locally (see `failed`).
        self._options["retry"] = Retry(NoBackoff(), 0)
        self._pooling = {"max_connections": max_connections, "timeout": timeout}
        pool = redis.BlockingConnectionPool.from_url(url, **self._pooling, **self._options)
        self.client = _owning(redis.Redis(connection_pool=pool))
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._connection_error: type[BaseException] = redis.ConnectionError
        self.scripts = {
            name: self.client.register_script(_source(name))
            for name in (*_BREAKER_SCRIPTS, *_WINDOW_SCRIPTS)
        }
        self.lease_release = self.client.register_script(lua.LEASE_RELEASE)
        self.lease_renew = self.client.register_script(lua.LEASE_RENEW)
        self._tasks: set[asyncio.Task[None]] = set()
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        # Trial tokens: unique across the fleet without a syscall per admission.
        self._prefix = f"{os.getpid()}.{os.urandom(4).hex()}."
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._emitters: list[Emit] = []
        self.clock: Clock = SystemClock()
        self._backoff_min, self._backoff_max = probe_backoff
        self._backoff = self._backoff_min
        self.down_since: float | None = None
        self._retry_at = 0.0
        self._probes = 0  # probes granted by `usable` whose answer is still to come
        self._timeouts = (redis.TimeoutError, TimeoutError)
        self._timed_out = 0  # calls in a row that timed out (reset by any answer)

    def token(self) -> str:
        """A token no other holder in the fleet uses (for trial and single-flight leases)."""
        return self._prefix + str(next(self._counter))

    def attach(self, emit: Emit, clock: Clock) -> None:
        """Report outages to ``emit`` too; the first attached clock spaces the probes."""
        with self._lock:
            if not self._emitters:
                self.clock = clock
            self._emitters.append(emit)

    def aclient(self) -> Any:
        """The asyncio client of the running event loop (its connections belong to that loop)."""
        return self._aclient()[0]

    def _aclient(self) -> tuple[Any, dict[str, Any]]:
        import asyncio

        loop = asyncio.get_running_loop()
        pair = self._async.get(loop)
        if pair is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._drop_closed_loops()
            options = {**self._options, "retry": Retry(NoBackoff(), 0)}
            pool = BlockingConnectionPool.from_url(self._url, **self._pooling, **options)
            client = _owning(Redis(connection_pool=pool))
            pair = self._async[loop] = (client, {})
        return pair

    def _drop_closed_loops(self) -> None:
        """Let go of the clients of event loops that were closed without `aclose` (each
        ``asyncio.run`` makes a loop): their connections are shut down, so Redis frees them
        at once and this process's sockets close when collected, instead of one client per
        finished loop piling up until Redis refuses new clients."""
        import contextlib
        import socket

        for loop in [loop for loop in self._async if loop.is_closed()]:
            client = self._async.pop(loop)[0]
            pool = client.connection_pool
            connections = getattr(pool, "_available_connections", [])
            for connection in (*connections, *getattr(pool, "_in_use_connections", ())):
                transport = getattr(getattr(connection, "_writer", None), "transport", None)
                raw = transport.get_extra_info("socket") if transport is not None else None
                if raw is not None:
                    with contextlib.suppress(OSError):  # already gone
                        raw.shutdown(socket.SHUT_RDWR)

    def background(self, loop: asyncio.AbstractEventLoop, call: Coroutine[Any, Any, None]) -> None:
        """Run ``call`` as a task on ``loop`` (kept until done; `aclose` waits for it)."""
        task = loop.create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def ascript(self, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Run the script ``name`` (of `_redis_lua` or `_redis_lua_windows`) with the running
        loop's asyncio client."""
        client, scripts = self._aclient()
        script = scripts.get(name)
        if script is None:
            script = scripts[name] = client.register_script(_source(name))
        return await kept(script(keys=keys, args=args))

    # -- health ---------------------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether to call Redis now: always outside an outage; in one, one probe at a time."""
        if self.down_since is None:
            return True
        now = self.clock.monotonic()
        if now < self._retry_at:
            return False
        with self._lock:
            if now < self._retry_at or self.down_since is None:
                return self.down_since is None
            # This caller probes; the others keep going locally until it has an answer.
            self._retry_at = now + self._backoff
            self._probes += 1
            return True

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed or timed out: start (or prolong) the outage.

        Not when every pooled connection stayed in use for the whole timeout: Redis is
        fine, this process is busy; that one call decides locally (redis-py raises a plain
        ``ConnectionError("No connection available.")`` for it, told apart by its text).
        Nor for a timeout, until `TIMEOUTS_FOR_OUTAGE` calls in a row timed out; a refused
        or reset connection starts the outage at once.
        """
        if isinstance(exc, self._connection_error) and exc.args == _NO_CONNECTION:
            return
        if isinstance(exc, self._timeouts) and self.down_since is None:
            # A timeout is ambiguous: a stalled Redis, or a process too busy to read its
            # reply in time (a burst on one event loop, CPU starvation). It takes
            # TIMEOUTS_FOR_OUTAGE in a row, with no answer between them, to mean Redis.
            self._timed_out += 1
            if self._timed_out < TIMEOUTS_FOR_OUTAGE:
                return
        now = self.clock.monotonic()
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = now
                self._backoff = self._backoff_min
                self._probes = 0
                self._retry_at = now + self._backoff
            elif self._probes:
                # A probe failed: wait longer. Calls that were in flight when the outage
                # began fail too, but they are not probes and must not stretch the wait.
                self._probes -= 1
                self._backoff = min(self._backoff * 2, self._backoff_max)
                self._retry_at = now + self._backoff
            emitters = tuple(self._emitters) if first else ()
        if first:
            detail = f"{type(exc).__name__}: {str(exc).strip()}"
            logger.warning(
                "shared state (redis) unavailable, going on with in-process state: %s", detail
            )
            self._emit(emitters, SharedStateDegraded("redis", detail))

    def succeeded(self) -> None:
        """A Redis call answered: end the outage, if there was one."""
        self._timed_out = 0
        if self.down_since is None:
            return
        with self._lock:
            since = self.down_since
            if since is None:
                return
            self.down_since = None
            emitters = tuple(self._emitters)
        outage = self.clock.monotonic() - since
        logger.info("shared state (redis) answers again after %.3fs", outage)
        self._emit(emitters, SharedStateRecovered("redis", outage))

    @staticmethod
    def _emit(emitters: Sequence[Emit], event: Event) -> None:
        for emit in emitters:
            emit(event)

    def close(self) -> None:
        """Close the sync client's connections."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the running event loop's asyncio client, if it has one."""
        import asyncio

        loop = asyncio.get_running_loop()
        mine = [task for task in tuple(self._tasks) if task.get_loop() is loop]
        if mine:  # outcomes still on their way to Redis
            await asyncio.wait(mine, timeout=5 * self._options["socket_timeout"])
        pair = self._async.pop(loop, None)
        if pair is not None:
            await pair[0].aclose()

    def __repr__(self) -> str:
        # The URL may carry a password: never shown.
        state = "up" if self.down_since is None else "down"
        return f"Link(namespace={self.namespace!r}, {state})"
