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


class Reservation:
    """One admitted call's place in the window: when it started and its tokens so far."""

    __slots__ = ("at", "live", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.live = True  # False once it has left the window (or was cancelled)

    def __repr__(self) -> str:
        return f"Reservation(at={self.at:g}, tokens={self.tokens})"


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

    def try_acquire(self, tokens: int) -> Reservation | Refusal:
        """Admit one call of ``tokens`` estimated tokens now, or say why not and until when."""
        ...

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replace an admitted call's estimate with the tokens it really used."""
        ...

    def cancel(self, reservation: Reservation) -> None:
        """Give back an admitted call that was never sent."""
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

    Args:
        rpm: Requests per minute, or None.
        tpm: Tokens per minute (input plus output), or None.
        clock: The manager's clock.
    """

    __slots__ = ("_clock", "_lock", "_log", "_tokens", "rpm", "tpm")

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock) -> None:
        self.rpm = check_limit("rpm", rpm)
        self.tpm = check_limit("tpm", tpm)
        self._clock = clock
        self._lock = threading.Lock()
        self._log: deque[Reservation] = deque()  # admitted calls, oldest first
        self._tokens = 0  # sum of the tokens of the calls in the log

    def _evict(self, now: float) -> None:
        log = self._log
        horizon = now - WINDOW
        while log and log[0].at <= horizon:
            gone = log.popleft()
            gone.live = False
            self._tokens -= gone.tokens

    def try_acquire(self, tokens: int) -> Reservation | Refusal:
        """Admit one call of ``tokens`` estimated tokens, or refuse it.

        Returns:
            A `Reservation` (settle or cancel it when the call ends), or a `Refusal` with the
            seconds until the call would fit (``math.inf`` when ``tokens`` alone exceed the
            tokens-per-minute limit).
        """
        now = self._clock.monotonic()
        with self._lock:
            self._evict(now)
            log = self._log
            rpm = self.rpm
            if rpm is not None and len(log) >= rpm:
                # The call fits once the oldest calls beyond the limit have left the window.
                return Refusal(REQUESTS_PER_MINUTE, log[len(log) - rpm].at + WINDOW - now)
            tpm = self.tpm
            if tpm is not None and self._tokens + tokens > tpm:
                return Refusal(TOKENS_PER_MINUTE, self._token_wait(tokens, tpm, now))
            reservation = Reservation(now, tokens)
            log.append(reservation)
            self._tokens += tokens
            return reservation

    def _token_wait(self, tokens: int, tpm: int, now: float) -> float:
        """Seconds until enough old calls leave the window for ``tokens`` more to fit."""
        if tokens > tpm:
            return math.inf
        excess = self._tokens + tokens - tpm
        for reservation in self._log:
            excess -= reservation.tokens
            if excess <= 0:
                return reservation.at + WINDOW - now
        return 0.0  # unreachable: the whole log leaving frees every token

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Count ``tokens`` (as reported by the provider) instead of the call's estimate."""
        with self._lock:
            if reservation.live:
                self._tokens += tokens - reservation.tokens
            reservation.tokens = tokens

    def cancel(self, reservation: Reservation) -> None:
        """Remove a call that was admitted but never sent."""
        with self._lock:
            if not reservation.live:
                return
            reservation.live = False
            self._log.remove(reservation)
            self._tokens -= reservation.tokens

    def usage(self) -> tuple[int, int]:
        """Requests and tokens in the last minute."""
        now = self._clock.monotonic()
        with self._lock:
            self._evict(now)
            return len(self._log), self._tokens

    def snapshot(self) -> dict[str, int | None]:
        """Limits and current usage, for `LLMManager.get_model_info`."""
        requests, tokens = self.usage()
        return {"rpm": self.rpm, "tpm": self.tpm, "requests": requests, "tokens": tokens}

    def __repr__(self) -> str:
        return f"LocalRateLimiter(rpm={self.rpm}, tpm={self.tpm})"
