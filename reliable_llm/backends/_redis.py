"""`RedisState`: breakers, cooldowns, the cache and single flight shared across processes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from reliable_llm._errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from reliable_llm._breaker import ModelBreaker, TransitionHook
    from reliable_llm._cache import InMemoryCache
    from reliable_llm._clock import Clock
    from reliable_llm._events import EventHook
    from reliable_llm._policies import BreakerPolicy
    from reliable_llm._ratelimit import RateLimiter
    from reliable_llm.backends._redis_cache import RedisCache
    from reliable_llm.backends._redis_flight import SharedFlight
    from reliable_llm.backends._redis_link import Link

__all__ = ["RedisState"]


def _seconds(name: str, value: object, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}; {fix}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds, got {value!r}; {fix}"
        )
    return float(value)


class RedisState:
    """State shared by every process that uses the same Redis URL and namespace.

    Given as ``LLMManager(shared_state=RedisState("redis://127.0.0.1:6379/0"))``, it shares:

    - the circuit breakers of models registered under the same name: the decisions (count a
      failure, open, let the one half-open trial through, close) are made atomically in
      Redis by Lua scripts on Redis's own clock, so the fleet sends one trial per recovery
      window; while a breaker is open each process rejects calls without a round trip.
      Every `BreakerPolicy` rule is the fleet's: consecutive failures, the failure and
      slow-call rates over one sliding window fed by every process (whether a call was slow
      is measured in its process), the growing open time, and the panic threshold;
    - Retry-After cooldowns: a 429 or 503 with a retry hint seen by one process keeps every
      process off that model until the hint expires (they fall back to the next model);
    - the response cache (JSON text, never pickle), unless ``LLMManager(cache_backend=...)``
      is given: the user's backend wins;
    - the rate limits (``rpm``, ``tpm``) of each deployment of a group registered under the
      same name: one sliding window per deployment in Redis, so the fleet together stays
      within them;
    - single flight: identical requests in flight in several processes make one upstream
      call (a short lease on the cache key; the others wait for the cached answer within
      their own deadline, and call the model themselves if the leader dies).

    Redis is never a single point of failure: each call is bounded by ``timeout``; when
    Redis fails or is slow, requests go on with each process's own breakers, cache and rate
    limits, a `reliable_llm.events.SharedStateDegraded` event and one warning report the
    outage, and Redis is probed again (backoff from 0.5 s to ``max_probe_interval``) until
    it answers (`reliable_llm.events.SharedStateRecovered`). Needs the ``redis`` extra
    (``pip install 'reliable-llm[redis]'``) and one Redis (a primary, or a proxy to one):
    each script reads several keys, which Redis Cluster would need in one hash slot.

    Args:
        url: A redis-py URL: ``redis://[[user]:password@]host:port/db``, ``rediss://...``
            (TLS) or ``unix:///path/to/redis.sock``. Never shown in reprs, logs or errors.
        namespace: Prefix of every key; processes share state only within one namespace.
        timeout: Seconds any one Redis call may take (its reply) before it is decided
            in-process; three such calls in a row start an outage. 10 ms by default. On
            loopback a decision script takes about 0.07 ms alone and 0.5 ms at the median
            with 8 processes calling at once (p99 4 ms, 10 ms under CPU oversubscription) on
            2 cores; in that drill a 10 ms bound timed out 0 of 8,000 healthy calls (5 ms:
            3; with 4 more CPU-bound processes, 10 ms: 0.4 %, 5 ms: 1.8 %). Raise it for a
            Redis across zones, whose round trip alone can take several ms.
        flight_lease: Seconds a single-flight leader's lease lasts without renewal (it is
            renewed every third of that while the leader works): how long followers wait
            for a leader whose process died.
        max_probe_interval: Longest wait in seconds between probes of an unavailable Redis.
        connect_timeout: Seconds opening a connection may take (default: ``timeout``, at
            least 0.25 s). Connections are opened rarely (they are pooled and reused), and on a
            busy event loop or over TLS opening one takes longer than a call; a Redis that
            refuses connections fails at once.
        max_connections: Connections to Redis this process keeps at most (and each event loop,
            for the asyncio client; redis-py's ``BlockingConnectionPool``). A call that finds
            them all busy for ``timeout`` decides in-process, without reporting an outage:
            Redis answered, this process was busy.

    Raises:
        ConfigurationError: A parameter is invalid, or redis-py is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "reliable-llm",
        timeout: float = 0.01,
        flight_lease: float = 2.0,
        max_probe_interval: float = 30.0,
        max_connections: int = 16,
        connect_timeout: float | None = None,
    ) -> None:
        if not isinstance(url, str) or "://" not in url:
            shown = type(url).__name__ if not isinstance(url, str) else "a string without ://"
            raise ConfigurationError(
                f"url must be a Redis URL such as 'redis://127.0.0.1:6379/0', got {shown}"
            )
        if not isinstance(namespace, str) or not namespace or any(c.isspace() for c in namespace):
            raise ConfigurationError(
                f"namespace must be a non-empty string without spaces, got {namespace!r}"
            )
        fix = "pass e.g. 0.01"
        self.timeout = _seconds("timeout", timeout, fix)
        self.flight_lease = _seconds("flight_lease", flight_lease, "pass e.g. 2.0")
        probe = _seconds("max_probe_interval", max_probe_interval, "pass e.g. 30.0")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ConfigurationError(
                f"max_connections must be an int >= 1, got {max_connections!r}; pass e.g. 16"
            )
        if connect_timeout is None:
            connect_timeout = max(self.timeout, 0.25)
        self.connect_timeout = _seconds("connect_timeout", connect_timeout, "pass e.g. 0.25")
        self.namespace = namespace
        from reliable_llm.backends._redis_link import Link

        try:
            self._link: Link = Link(
                url,
                namespace,
                self.timeout,
                (min(0.5, probe), probe),
                max_connections,
                self.connect_timeout,
            )
        except ConfigurationError:
            raise
        except ValueError as exc:  # redis-py's message about a malformed URL, without it
            raise ConfigurationError(
                f"url is not a Redis URL redis-py understands ({type(exc).__name__}); "
                "use redis://host:port/db, rediss://... or unix:///path"
            ) from None
        self._flight: SharedFlight | None = None

    # -- what LLMManager asks of its shared state ------------------------------------------------

    def attach(self, emit: EventHook, clock: Clock) -> None:
        """Report outages to ``emit`` (a manager's event sink); called by `LLMManager`."""
        self._link.attach(emit, clock)

    def breaker(
        self,
        model: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_change: TransitionHook | None,
        random: Callable[[], float] | None = None,
    ) -> ModelBreaker:
        """The shared breaker of ``model``; called by `LLMManager.register_model`.

        Every rule of ``policy`` holds for the whole fleet: consecutive failures, the failure
        and slow-call rates over the sliding window (a window in Redis fed by every process),
        the growing open time with its jitter, and the panic threshold (read on the fleet's
        breaker states as this process mirrors them; a panic trial is the fleet's one trial
        lease). While Redis is unavailable, this process's own breaker applies them alone.
        """
        if policy.windowed:
            from reliable_llm.backends._redis_windows import WindowedSharedBreaker

            return WindowedSharedBreaker(model, policy, clock, on_change, self._link, random)
        from reliable_llm.backends._redis_breaker import SharedBreaker

        return SharedBreaker(model, policy, clock, on_change, self._link, random)

    def limiter(
        self, deployment: str, rpm: int | None, tpm: int | None, clock: Clock
    ) -> RateLimiter:
        """The rate limiter of ``deployment`` (its id, ``"<name>[<deployment>]"``); called by
        `LLMManager.register_model` for each deployment of a group.

        With ``rpm`` or ``tpm`` set, a `SharedRateLimiter`: the limits hold for the whole
        fleet (every process that registers the same group on this namespace), one round trip
        per admission; without either, the in-process counter the ``lowest_usage`` strategy
        reads (no round trip).

        Raises:
            ConfigurationError: ``rpm`` or ``tpm`` is not a positive int or None.
        """
        if rpm is None and tpm is None:
            from reliable_llm._ratelimit import LocalRateLimiter

            return LocalRateLimiter(rpm, tpm, clock)
        from reliable_llm.backends._redis_limits import SharedRateLimiter

        return SharedRateLimiter(deployment, rpm, tpm, clock, self._link)

    def cache(self, local: InMemoryCache) -> RedisCache:
        """The shared cache, with ``local`` answering during an outage."""
        from reliable_llm.backends._redis_cache import RedisCache

        return RedisCache(self._link, local)

    def flight(self) -> SharedFlight:
        """The single flight across processes (one per `RedisState`)."""
        if self._flight is None:
            from reliable_llm.backends._redis_flight import SharedFlight

            self._flight = SharedFlight(self._link, self.flight_lease)
        return self._flight

    def ping(self) -> float:
        """Check now that Redis answers with these credentials; for a startup or readiness
        check (requests never need it: an unavailable Redis only degrades them).

        Returns:
            The round trip in seconds.

        Raises:
            ConfigurationError: Redis refused the credentials, or did not answer within
                ``connect_timeout`` plus ``timeout``; names the error, never the URL.
        """
        import time

        link = self._link
        started = time.perf_counter()
        try:
            link.client.ping()
        except link.errors as exc:
            raise ConfigurationError(
                f"Redis did not answer PING ({type(exc).__name__}: {exc}); check the URL's "
                "host, port, password and scheme (redis:// or rediss://)"
            ) from None
        link.succeeded()
        return time.perf_counter() - started

    @property
    def available(self) -> bool:
        """Whether Redis answered the last call (False during an outage)."""
        return self._link.down_since is None

    def close(self) -> None:
        """Close the connections to Redis (the next call opens new ones)."""
        self._link.close()

    async def aclose(self) -> None:
        """Close the running event loop's connections to Redis (`LLMManager.aclose` does)."""
        await self._link.aclose()

    def __repr__(self) -> str:
        state = "available" if self.available else "unavailable"
        return f"RedisState(namespace={self.namespace!r}, timeout={self.timeout:g}, {state})"
