"""Policies: frozen dataclasses with safe defaults, validated at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reliable_llm._errors import ConfigurationError

__all__ = [
    "BreakerPolicy",
    "CachePolicy",
    "HedgePolicy",
    "RetryPolicy",
    "TimeoutPolicy",
    "seconds_override",
]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def seconds_override(name: str, value: object) -> float | None:
    """A per-call override in seconds (``timeout=``, ``cache_ttl=``); None when not given.

    Raises:
        ConfigurationError: The value is not a finite number of seconds > 0.
    """
    if value is None:
        return None
    if not _is_number(value) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one model is retried before the manager falls back to the next.

    The n-th retry (n = 0, 1, ...) waits ``min(max_delay, initial_delay * multiplier**n)``,
    reduced by a random fraction of up to ``jitter`` so that clients spread out. A
    ``Retry-After`` hint from the provider lengthens the wait; if the wait would not fit in
    the request's remaining time, the manager moves to the next model at once.

    With ``hand_over=True``, a transient failure (429, 5xx, timeout, dropped connection) is
    not retried on this model while a later model of the route has a closed breaker: the
    request moves to that model at once (``FailureReason.HANDED_OVER``), instead of waiting
    out the backoff on a model that may be down. The model that is the last one standing (no
    healthy model after it) still retries with backoff. Off by default.

    Attributes:
        max_retries: Retries after the first attempt, per model (0 disables retrying).
        initial_delay: Seconds before the first retry (the seed's ``2**attempt * 1 s``).
        multiplier: Growth factor between retries.
        max_delay: Cap on one computed wait, in seconds.
        jitter: Fraction in [0, 1] of each wait that is randomized away.
        max_retry_after: Longest ``Retry-After`` hint honoured; longer hints give the model up.
        hand_over: Hand a transiently failing request to the next healthy model at once
            instead of retrying here (see above).
    """

    max_retries: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    hand_over: bool = False

    def __post_init__(self) -> None:
        _check(
            _is_count(self.max_retries) and 0 <= self.max_retries <= 100,
            f"RetryPolicy.max_retries must be an int from 0 to 100, got {self.max_retries!r}",
        )
        _check(
            _is_number(self.initial_delay) and self.initial_delay >= 0,
            f"RetryPolicy.initial_delay must be a finite number >= 0, got {self.initial_delay!r}",
        )
        _check(
            _is_number(self.multiplier) and self.multiplier >= 1,
            f"RetryPolicy.multiplier must be a finite number >= 1, got {self.multiplier!r}",
        )
        _check(
            _is_number(self.max_delay) and self.max_delay >= self.initial_delay,
            "RetryPolicy.max_delay must be a finite number >= initial_delay, "
            f"got {self.max_delay!r}",
        )
        _check(
            _is_number(self.jitter) and 0 <= self.jitter <= 1,
            f"RetryPolicy.jitter must be a number from 0 to 1, got {self.jitter!r}",
        )
        _check(
            _is_number(self.max_retry_after) and self.max_retry_after >= 0,
            "RetryPolicy.max_retry_after must be a finite number >= 0, "
            f"got {self.max_retry_after!r}",
        )
        _check(
            isinstance(self.hand_over, bool),
            f"RetryPolicy.hand_over must be True or False, got {self.hand_over!r}",
        )

    def backoff(self, retry_index: int, random_fraction: float) -> float:
        """The wait before retry number ``retry_index`` (0-based), given a random in [0, 1)."""
        base = self.initial_delay * self.multiplier ** min(retry_index, 64)
        base = min(base, self.max_delay)
        return base * (1.0 - self.jitter * random_fraction)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a model's circuit breaker opens and when it tries the model again.

    Attributes:
        failure_threshold: Consecutive failed calls that open the breaker.
        recovery_timeout: Seconds the breaker stays open before one trial call is let through.
    """

    failure_threshold: int = 5
    recovery_timeout: float = 60.0

    def __post_init__(self) -> None:
        _check(
            _is_count(self.failure_threshold) and self.failure_threshold >= 1,
            f"BreakerPolicy.failure_threshold must be an int >= 1, got {self.failure_threshold!r}",
        )
        _check(
            _is_number(self.recovery_timeout) and self.recovery_timeout > 0,
            "BreakerPolicy.recovery_timeout must be a finite number of seconds > 0, "
            f"got {self.recovery_timeout!r}",
        )


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Size and lifetime of the default in-memory response cache.

    Attributes:
        max_size: Entries kept; the least recently used is evicted first.
        ttl: Seconds an entry lives, or None to keep entries until evicted.
        max_bytes: Bound on the entries' total size (bytes of their JSON text), or None for
            no bound; the least recently used are evicted first. An entry larger than the
            whole bound is not stored.
    """

    max_size: int = 1024
    ttl: float | None = 3600.0
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        _check(
            _is_count(self.max_size) and self.max_size >= 1,
            f"CachePolicy.max_size must be an int >= 1, got {self.max_size!r}",
        )
        _check(
            self.ttl is None or (_is_number(self.ttl) and self.ttl > 0),
            f"CachePolicy.ttl must be None or a number of seconds > 0, got {self.ttl!r}",
        )
        _check(
            self.max_bytes is None or (_is_count(self.max_bytes) and self.max_bytes >= 1),
            f"CachePolicy.max_bytes must be None or an int >= 1, got {self.max_bytes!r}",
        )


@dataclass(frozen=True, slots=True)
class TimeoutPolicy:
    """Deadlines, in wall-clock seconds, enforced by the manager around every upstream call.

    A deadline is not a hint handed to a socket: the manager stops waiting when it passes,
    however slowly the upstream trickles its answer. A blocking model that does not enforce
    its own timeout runs in a worker thread; when its time is up the manager moves on and the
    abandoned call finishes (or times out on its own) in that thread, its answer discarded.

    Attributes:
        total: Seconds a request may take in all, retries and fallbacks included.
        per_attempt: Seconds one upstream call may take (connect, headers and the whole body;
            for a stream, until its first chunk), so a hung model leaves time to fall back.
            Providers receive ``min(per_attempt, time left)`` as their timeout.
        stream_idle: Seconds a stream may go without a chunk once it has started (keep-alive
            comments and pings do not count as chunks).
    """

    total: float = 120.0
    per_attempt: float = 60.0
    stream_idle: float = 30.0

    def __post_init__(self) -> None:
        _check(
            _is_number(self.total) and self.total > 0,
            f"TimeoutPolicy.total must be a finite number of seconds > 0, got {self.total!r}",
        )
        _check(
            _is_number(self.per_attempt) and self.per_attempt > 0,
            "TimeoutPolicy.per_attempt must be a finite number of seconds > 0, "
            f"got {self.per_attempt!r}",
        )
        _check(
            _is_number(self.stream_idle) and self.stream_idle > 0,
            "TimeoutPolicy.stream_idle must be a finite number of seconds > 0, "
            f"got {self.stream_idle!r}",
        )


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """When a slow request is also sent to the next model of its route (a hedged request).

    If the model being tried has not answered ``delay`` seconds (wall clock) after its first
    attempt started, the same request also goes to the next model of the route whose breaker
    admits it; the first complete (and valid) answer wins and the other call is cancelled
    (async: its task is cancelled; sync: the blocking call is abandoned in its worker thread
    and its outcome discarded). At most one hedge per request, so a request makes at most
    two calls at once; no hedge is started once the request's deadline has passed. A stream
    is hedged only until its first chunk (the wait for the first chunk is what is raced;
    once one model's chunks flow, that stream is the answer). The practice comes from "The
    Tail at Scale" (Dean and Barroso, 2013), which hedges at the 95th percentile latency.

    Attributes:
        delay: Seconds to wait before hedging, or ``"p95"``: the model's 95th percentile
            latency over its recent successful attempts (the metrics window; recomputed at
            most once a second of the manager's clock).
        default_delay: Seconds used with ``"p95"`` until the model has ``min_samples``
            successful attempts.
        min_delay: Floor in seconds of a ``"p95"`` delay, so a very fast model is not
            hedged on every request.
        min_samples: Successful attempts a model needs before its p95 is used.
    """

    delay: float | str = "p95"
    default_delay: float = 2.0
    min_delay: float = 0.05
    min_samples: int = 20

    def __post_init__(self) -> None:
        _check(
            self.delay == "p95" or (_is_number(self.delay) and self.delay >= 0),  # type: ignore[operator]
            f"HedgePolicy.delay must be a finite number of seconds >= 0 or 'p95', "
            f"got {self.delay!r}",
        )
        _check(
            _is_number(self.default_delay) and self.default_delay >= 0,
            "HedgePolicy.default_delay must be a finite number of seconds >= 0, "
            f"got {self.default_delay!r}",
        )
        _check(
            _is_number(self.min_delay) and self.min_delay >= 0,
            "HedgePolicy.min_delay must be a finite number of seconds >= 0, "
            f"got {self.min_delay!r}",
        )
        _check(
            _is_count(self.min_samples) and self.min_samples >= 1,
            f"HedgePolicy.min_samples must be an int >= 1, got {self.min_samples!r}",
        )
