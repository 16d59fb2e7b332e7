"""Client-side rate limits of one deployment: requests and tokens per minute.

A sliding-window log (exact: never more than the limit in any window), on the injected clock.
Each admitted call holds a `Reservation` of its estimated tokens; `settle` replaces the
estimate with the tokens the provider reported once the call ends.

Hand-written rather than taken from a rate-limit library (``limits``, ``pyrate-limiter``):
they read the system clock (our tests run on a fake one), cannot correct a reservation after
the fact (an LLM call's tokens are known only when it ends) and do not report when capacity
frees. The `RateLimiter` protocol is all the routing layer needs, so a limiter shared across
processes (in Redis, say) can stand in for `LocalRateLimiter`.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Protocol, runtime_checkable

from reliable_llm._clock import Clock
from reliable_llm._errors import ConfigurationError

__all__ = [
    "REQUESTS_PER_MINUTE",
    "TOKENS_PER_MINUTE",
    "LocalRateLimiter",
    "RateLimiter",
    "Refusal",
    "Reservation",
    "check_limit",
]

WINDOW = 60.0
"""Seconds of the sliding window: the limits are per minute."""

REQUESTS_PER_MINUTE = "rpm"
TOKENS_PER_MINUTE = "tpm"


Reservation = int
"""An admitted call's place in the window: its sequence number (see `LocalRateLimiter`)."""


class Refusal:
    """Why a call was refused: the limit reached and the seconds until it has room."""

    __slots__ = ("limit", "retry_in")

    def __init__(self, limit: str, retry_in: float) -> None:
        self.limit = limit  # REQUESTS_PER_MINUTE or TOKENS_PER_MINUTE
        self.retry_in = retry_in  # math.inf: the call alone exceeds the tokens-per-minute limit

    def __repr__(self) -> str:
        return f"Refusal({self.limit!r}, retry_in={self.retry_in:g})"


@runtime_checkable
class RateLimiter(Protocol):
    """What routing needs of a rate limiter (in process, or shared by many processes)."""

    rpm: int | None
    tpm: int | None
    remote: bool
    """Whether deciding takes a round trip: then the async gate awaits `atry_acquire`."""

    def try_acquire(self, tokens: int) -> Reservation | Refusal:
        """Admit one call of ``tokens`` estimated tokens now, or say why not and until when."""
        ...

    async def atry_acquire(self, tokens: int) -> Reservation | Refusal:
        """Async twin of `try_acquire`, awaited only when `remote` is True."""
        ...

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replace an admitted call's estimate with the tokens it really used (never blocks
        an event loop: a remote limiter called on a loop's thread sends it in a task)."""
        ...

    def usage(self) -> tuple[int, int]:
        """Requests and tokens counted in the current window."""
        ...


def check_limit(name: str, value: object) -> int | None:
    """``value`` as a per-minute limit: None (no limit) or a positive int.

    Raises:
        ConfigurationError: Anything else, naming ``name``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{name} must be a positive int (per minute) or None for no limit, got {value!r}"
        )
    return value


class LocalRateLimiter:
    """Requests-per-minute and tokens-per-minute limits of one deployment, in this process.

    Either limit may be None; with both None it only counts (the ``lowest_usage`` strategy
    reads the counts). Thread-safe; the lock is held for a few instructions and never while
    waiting, so it is also safe on an event loop.

    The window is two deques, of admission times and of token counts, with a reservation
    being a call's sequence number: no object per call for the garbage collector to walk,
    however many calls the minute holds.

    Args:
        rpm: Requests per minute, or None.
        tpm: Tokens per minute (input plus output), or None.
        clock: The manager's clock.
    """

    __slots__ = ("_clock", "_counts", "_first", "_lock", "_times", "_tokens", "rpm", "tpm")

    remote = False  # decided in this process: the async gate calls `try_acquire`

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock) -> None:
        self.rpm = check_limit("rpm", rpm)
        self.tpm = check_limit("tpm", tpm)
        self._clock = clock
        self._lock = threading.Lock()
        self._times: deque[float] = deque()  # admission time of each call, oldest first
        self._counts: deque[int] = deque()  # its tokens: the estimate, then the reported usage
        self._first = 0  # sequence number of the oldest call in the window
        self._tokens = 0  # sum of _counts

    def _evict(self, now: float) -> None:
        times = self._times
        counts = self._counts
        horizon = now - WINDOW
        while times and times[0] <= horizon:
            times.popleft()
            self._tokens -= counts.popleft()
            self._first += 1

    def try_acquire(self, tokens: int) -> Reservation | Refusal:
        """Admit one call of ``tokens`` estimated tokens, or refuse it.

        Returns:
            A `Reservation` (`settle` it when the call ends), or a `Refusal` with the seconds
            until the call would fit (``math.inf`` when ``tokens`` alone exceed the
            tokens-per-minute limit).
        """
        with self._lock:
            # Read under the lock, so the window stays in time order whoever calls.
            now = self._clock.monotonic()
            times = self._times
            if times and times[0] <= now - WINDOW:
                self._evict(now)
            n = len(times)
            rpm = self.rpm
            if rpm is not None and n >= rpm:
                # The call fits once the oldest calls beyond the limit have left the window.
                return Refusal(REQUESTS_PER_MINUTE, times[n - rpm] + WINDOW - now)
            tpm = self.tpm
            if tpm is not None and self._tokens + tokens > tpm:
                return Refusal(TOKENS_PER_MINUTE, self._token_wait(tokens, tpm, now))
            times.append(now)
            self._counts.append(tokens)
            self._tokens += tokens
            return self._first + n

    async def atry_acquire(self, tokens: int) -> Reservation | Refusal:
        """`try_acquire`, for the protocol: the async gate calls `try_acquire` directly."""
        return self.try_acquire(tokens)

    def _token_wait(self, tokens: int, tpm: int, now: float) -> float:
        """Seconds until enough old calls leave the window for ``tokens`` more to fit."""
        if tokens > tpm:
            return math.inf
        excess = self._tokens + tokens - tpm
        for at, count in zip(self._times, self._counts, strict=True):
            excess -= count
            if excess <= 0:
                return at + WINDOW - now
        return 0.0  # unreachable: the whole window leaving frees every token

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Count ``tokens`` (as reported by the provider) instead of the call's estimate; a
        call that has left the window already is not counted any more."""
        with self._lock:
            index = reservation - self._first
            counts = self._counts
            if 0 <= index < len(counts):
                self._tokens += tokens - counts[index]
                counts[index] = tokens

    def usage(self) -> tuple[int, int]:
        """Requests and tokens in the last minute."""
        with self._lock:
            self._evict(self._clock.monotonic())
            return len(self._times), self._tokens

    def snapshot(self) -> dict[str, int | None]:
        """Limits and current usage, for `LLMManager.get_model_info`."""
        requests, tokens = self.usage()
        return {"rpm": self.rpm, "tpm": self.tpm, "requests": requests, "tokens": tokens}

    def __repr__(self) -> str:
        return f"LocalRateLimiter(rpm={self.rpm}, tpm={self.tpm})"
