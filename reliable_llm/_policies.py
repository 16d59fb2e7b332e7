"""Policies: frozen dataclasses with safe defaults, validated at construction."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TypeVar

from reliable_llm._errors import ConfigurationError

__all__ = [
    "BreakerPolicy",
    "CachePolicy",
    "HedgePolicy",
    "RetryPolicy",
    "TimeoutPolicy",
    "check_policy",
    "seconds_override",
]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _percent_hint(owner: str, name: str, value: object) -> None:
    """Warn when a percentage looks like a fraction (0.5 meant as 50 %): it is accepted, as
    it may be meant, but it opens (or caps) at well under one percent."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1:
        warnings.warn(
            f"{owner}.{name}={value!r} is a percentage: {value:g} %, not {value * 100:g} %; "
            f"pass {value * 100:g} for {value * 100:g} %",
            UserWarning,
            stacklevel=4,
        )


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


def _is_percentage(value: object) -> bool:
    return _is_number(value) and 0 < value <= 100  # type: ignore[operator]


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
        retry_budget_percent: Opt-in retry budget: the retries of this model within the last
            ``retry_budget_window`` seconds may be at most this percentage of its requests in
            that window (Envoy's ``retry_budget.budget_percent``, whose default is 20.0), so
            retries cannot multiply the load on a struggling provider. A retry the budget
            does not allow gives the model up (reason ``retry_budget_exhausted``). None (the
            default): no budget.
        retry_budget_min_retries: Retries always allowed per window however low the traffic
            (Envoy's ``min_retry_concurrency``, default 3; counted per window, as Linkerd's
            and Finagle's budgets count ``minRetriesPerSecond``).
        retry_budget_window: Seconds of recent requests and retries the budget counts (the
            ``ttl`` of Linkerd's and Finagle's retry budgets, default 10 s), in 20 buckets,
            so between 95% and 100% of that span.
        hand_over: Hand a transiently failing request to the next healthy model at once
            instead of retrying here (see above).
    """

    max_retries: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    retry_budget_percent: float | None = None
    retry_budget_min_retries: int = 3
    retry_budget_window: float = 10.0
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
            self.retry_budget_percent is None
            or (_is_number(self.retry_budget_percent) and 0 <= self.retry_budget_percent <= 100),
            "RetryPolicy.retry_budget_percent must be None (no budget) or a percentage from 0 "
            f"to 100 such as 20.0, got {self.retry_budget_percent!r}",
        )
        _percent_hint("RetryPolicy", "retry_budget_percent", self.retry_budget_percent)
        _check(
            _is_count(self.retry_budget_min_retries) and self.retry_budget_min_retries >= 0,
            "RetryPolicy.retry_budget_min_retries must be an int >= 0, "
            f"got {self.retry_budget_min_retries!r}",
        )
        _check(
            _is_number(self.retry_budget_window) and self.retry_budget_window > 0,
            "RetryPolicy.retry_budget_window must be a finite number of seconds > 0, "
            f"got {self.retry_budget_window!r}",
        )
        _check(
            self.retry_budget_percent is not None
            or (self.retry_budget_min_retries, self.retry_budget_window) == (3, 10.0),
            "RetryPolicy sets retry_budget_min_retries or retry_budget_window but no "
            "retry_budget_percent; set retry_budget_percent (Envoy's default is 20.0) too",
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


_WINDOW_TYPES = ("count_based", "time_based")
_WINDOW_DEFAULTS = {  # settings only a failure-rate or slow-call rule reads
    "minimum_number_of_calls": 100,
    "sliding_window_type": "count_based",
    "sliding_window_size": 100,
    "slow_call_rate_threshold": 100.0,
}


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a model's circuit breaker opens and when it tries the model again.

    By default a breaker opens after ``failure_threshold`` consecutive failures and stays open
    ``recovery_timeout`` seconds before one trial call. Every other rule is opt-in:

    - **Failure rate** (resilience4j's vocabulary): with ``failure_rate_threshold`` set, the
      breaker opens when at least that percentage of the calls in its sliding window failed,
      once the window holds ``minimum_number_of_calls``; this replaces the consecutive rule.
    - **Slow calls** (resilience4j): with ``slow_call_duration_threshold`` set, a call that
      took longer is slow, and the breaker opens when at least ``slow_call_rate_threshold``
      percent of the window's calls were slow; a slow half-open trial re-opens it.
    - **Growing open time** (Envoy's outlier ejection): with ``max_recovery_timeout`` set, the
      n-th consecutive opening lasts ``min(recovery_timeout * n, max_recovery_timeout)``
      seconds, so each failed trial lengthens the next wait; a successful trial resets n.
      ``recovery_jitter`` adds a random ``[0, recovery_jitter)`` seconds to every opening
      (Envoy's ``max_ejection_time_jitter``).
    - **Panic threshold** (Envoy's ``healthy_panic_threshold``): when fewer than
      ``panic_threshold`` percent of a request's route have a closed breaker, this model's
      open breaker lets its half-open trial through at once instead of waiting out its open
      time (still one trial at a time), so a mostly healthy route whose breakers happened to
      open together keeps serving instead of failing everything fast.

    Attributes:
        failure_threshold: Consecutive failed calls that open the breaker (the default rule;
            unused once ``failure_rate_threshold`` is set).
        recovery_timeout: Seconds the breaker stays open before one trial call is let through
            (Envoy's ``base_ejection_time`` when the open time grows).
        failure_rate_threshold: Percentage (0, 100] of failed calls in the window that opens
            the breaker, or None (default) for the consecutive rule. resilience4j uses 50.
        minimum_number_of_calls: Calls the window must hold before a rate is acted on
            (resilience4j's default is 100).
        sliding_window_type: ``"count_based"`` (the last ``sliding_window_size`` calls) or
            ``"time_based"`` (the calls of the last ``sliding_window_size`` seconds, counted
            in 20 buckets, so between 95% and 100% of that span).
        sliding_window_size: Calls, or seconds, the window covers (default 100).
        slow_call_duration_threshold: Seconds above which a call (its whole attempt) is slow,
            or None (default) to ignore latency.
        slow_call_rate_threshold: Percentage (0, 100] of slow calls in the window that opens
            the breaker (resilience4j's default is 100).
        max_recovery_timeout: Cap, in seconds, on an open time that grows with each
            consecutive opening (Envoy's ``max_ejection_time``), or None (default): every
            opening lasts ``recovery_timeout``.
        recovery_jitter: Most seconds of random delay added to each open time (default 0).
        panic_threshold: Percentage (0, 100] of the route's breakers that must be closed for
            this model's open breaker to be respected, or None (default): no panic mode.
            Envoy's default is 50.

    Raises:
        ConfigurationError: A value is out of range (each message names the field).
    """

    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    failure_rate_threshold: float | None = None
    minimum_number_of_calls: int = 100
    sliding_window_type: str = "count_based"
    sliding_window_size: int = 100
    slow_call_duration_threshold: float | None = None
    slow_call_rate_threshold: float = 100.0
    max_recovery_timeout: float | None = None
    recovery_jitter: float = 0.0
    panic_threshold: float | None = None

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
        _check(
            self.failure_rate_threshold is None or _is_percentage(self.failure_rate_threshold),
            "BreakerPolicy.failure_rate_threshold must be None (open on consecutive failures) "
            f"or a percentage > 0 and <= 100 such as 50.0, got {self.failure_rate_threshold!r}",
        )
        _percent_hint("BreakerPolicy", "failure_rate_threshold", self.failure_rate_threshold)
        _check(
            _is_count(self.minimum_number_of_calls) and self.minimum_number_of_calls >= 1,
            "BreakerPolicy.minimum_number_of_calls must be an int >= 1, "
            f"got {self.minimum_number_of_calls!r}",
        )
        _check(
            self.sliding_window_type in _WINDOW_TYPES,
            "BreakerPolicy.sliding_window_type must be 'count_based' or 'time_based', "
            f"got {self.sliding_window_type!r}",
        )
        _check(
            _is_count(self.sliding_window_size) and 1 <= self.sliding_window_size <= 100_000,
            "BreakerPolicy.sliding_window_size must be an int from 1 to 100000 (calls, or "
            f"seconds when time_based), got {self.sliding_window_size!r}",
        )
        # Settings no rule reads are reported first: they explain any conflict between them.
        unused = [
            name
            for name, default in _WINDOW_DEFAULTS.items()
            if getattr(self, name) != default and not self.windowed
        ]
        _check(
            not unused,
            f"BreakerPolicy sets {', '.join(unused)} but no rule reads the sliding window; "
            "set failure_rate_threshold or slow_call_duration_threshold too",
        )
        default = (
            " (the default)"
            if self.minimum_number_of_calls == _WINDOW_DEFAULTS["minimum_number_of_calls"]
            else ""
        )
        _check(
            self.sliding_window_type == "time_based"
            or self.minimum_number_of_calls <= self.sliding_window_size,
            f"BreakerPolicy.minimum_number_of_calls ({self.minimum_number_of_calls!r}{default}) "
            f"must not exceed a count_based sliding_window_size ({self.sliding_window_size!r}): "
            "the window could never hold enough calls to open the breaker; set "
            f"minimum_number_of_calls <= {self.sliding_window_size!r}",
        )
        _check(
            self.slow_call_duration_threshold is None
            or (
                _is_number(self.slow_call_duration_threshold)
                and self.slow_call_duration_threshold > 0
            ),
            "BreakerPolicy.slow_call_duration_threshold must be None (latency ignored) or a "
            f"finite number of seconds > 0, got {self.slow_call_duration_threshold!r}",
        )
        _check(
            _is_percentage(self.slow_call_rate_threshold),
            "BreakerPolicy.slow_call_rate_threshold must be a percentage > 0 and <= 100, "
            f"got {self.slow_call_rate_threshold!r}",
        )
        _percent_hint("BreakerPolicy", "slow_call_rate_threshold", self.slow_call_rate_threshold)
        _check(
            self.max_recovery_timeout is None
            or (
                _is_number(self.max_recovery_timeout)
                and self.max_recovery_timeout >= self.recovery_timeout
            ),
            "BreakerPolicy.max_recovery_timeout must be None (a fixed open time) or a finite "
            f"number of seconds >= recovery_timeout ({self.recovery_timeout!r}), "
            f"got {self.max_recovery_timeout!r}",
        )
        _check(
            _is_number(self.recovery_jitter) and self.recovery_jitter >= 0,
            "BreakerPolicy.recovery_jitter must be a finite number of seconds >= 0, "
            f"got {self.recovery_jitter!r}",
        )
        _check(
            self.panic_threshold is None or _is_percentage(self.panic_threshold),
            "BreakerPolicy.panic_threshold must be None (no panic mode) or a percentage > 0 "
            f"and <= 100 such as 50.0, got {self.panic_threshold!r}",
        )
        _percent_hint("BreakerPolicy", "panic_threshold", self.panic_threshold)

    @property
    def windowed(self) -> bool:
        """Whether a rule reads the sliding window (a failure rate or slow calls)."""
        return self.failure_rate_threshold is not None or (
            self.slow_call_duration_threshold is not None
        )

    def open_time(self, ejections: int, random_fraction: float) -> float:
        """Seconds the ``ejections``-th consecutive opening lasts, given a random in [0, 1).

        ``recovery_timeout``, times ``ejections`` capped at ``max_recovery_timeout`` when
        that is set, plus ``recovery_jitter * random_fraction`` (Envoy's ejection time).
        """
        base = self.recovery_timeout
        cap = self.max_recovery_timeout
        if cap is not None:
            base = min(base * max(ejections, 1), cap)
        return base + self.recovery_jitter * random_fraction


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
    once one model's chunks flow, that stream is the answer). Requests with content parts
    (images, files), which are fitted to each model in turn, are not hedged. The practice
    comes from "The Tail at Scale" (Dean and Barroso, 2013), which hedges at the 95th
    percentile latency.

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


P = TypeVar("P")


def check_policy(name: str, value: P | None, kind: type[P], example: str) -> P | None:
    """``value`` when it is None or a ``kind``; else `ConfigurationError` naming ``name``
    and showing ``example`` (e.g. ``LLMManager(retry=3)`` instead of ``max_retries=3``)."""
    if value is None or isinstance(value, kind):
        return value
    raise ConfigurationError(
        f"{name} must be a {kind.__name__} such as {example}, got {type(value).__name__} {value!r}"
    )
