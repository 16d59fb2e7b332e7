"""The default metrics collector: exact counts and bounded latency windows."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reliable_llm._breaker import BreakerState
from reliable_llm._errors import InvalidResponseError
from reliable_llm._events import (
    AttemptFinished,
    BreakerTransition,
    CacheError,
    CacheHit,
    CacheMiss,
    Event,
    FallbackTaken,
    HedgeStarted,
    RequestFinished,
    RetryScheduled,
    SharedStateDegraded,
    SharedStateRecovered,
)

__all__ = ["MetricsCollector", "percentiles"]

LATENCY_WINDOW = 2048
"""Latencies kept per series; percentiles describe the most recent window."""


def percentiles(samples: Any) -> dict[str, float | None]:
    """Average, p50, p95 and p99 (nearest rank) of ``samples``, in seconds."""
    ordered = sorted(samples)
    n = len(ordered)
    if not n:
        return {"avg": None, "p50": None, "p95": None, "p99": None}

    def rank(q: float) -> float:
        return float(ordered[min(n - 1, max(0, int(q * n + 0.999999) - 1))])

    return {"avg": sum(ordered) / n, "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


@dataclass(slots=True)
class _ModelStats:
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    cancelled: int = 0
    retries: int = 0
    served: int = 0
    latency_sum: float = 0.0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_used: float | None = None
    last_error: str | None = None
    breaker_state: BreakerState = BreakerState.CLOSED
    breaker_opens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def _ignore(event: Event) -> None:
    """Events the collector does not aggregate."""


class MetricsCollector:
    """Aggregates events into the dict returned by `LLMManager.get_metrics`.

    All updates happen under one lock, so counts add up exactly under any concurrency.
    Memory is bounded: latency percentiles cover the last ``LATENCY_WINDOW`` samples.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers = {
            AttemptFinished: self._attempt,
            RetryScheduled: self._retry,
            FallbackTaken: self._fallback,
            HedgeStarted: self._hedge,
            BreakerTransition: self._transition,
            CacheHit: self._cache_hit,
            CacheMiss: self._cache_miss,
            CacheError: self._cache_error,
            RequestFinished: self._request,
            # Reported to hooks and logs; nothing to aggregate.
            SharedStateDegraded: _ignore,
            SharedStateRecovered: _ignore,
        }
        self.reset()

    def reset(self) -> None:
        """Forget every count (breaker states are kept: they describe the present)."""
        with self._lock:
            states = {n: s.breaker_state for n, s in getattr(self, "_models", {}).items()}
            self._models: dict[str, _ModelStats] = {}
            for name, state in states.items():
                self._model(name).breaker_state = state
            self._requests = 0
            self._succeeded = 0
            self._failed = 0
            self._cancelled = 0
            self._cache_errors = 0
            self._cache_hits = 0
            self._cache_misses = 0
            self._retries = 0
            # By (from_model, to_model, reason): one count per fallback, summed by pair and
            # by reason when read.
            self._fallbacks: Counter[tuple[str, str | None, str]] = Counter()
            self._transitions = 0
            self._hedges: Counter[tuple[str, str]] = Counter()
            self._invalid: Counter[str] = Counter()
            self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
            self._input_tokens = 0
            self._output_tokens = 0

    def __call__(self, event: Event) -> None:
        """Consume one event."""
        handler = self._handlers[type(event)]
        with self._lock:
            handler(event)  # type: ignore[operator]

    def _model(self, name: str) -> _ModelStats:
        stats = self._models.get(name)
        if stats is None:
            stats = self._models[name] = _ModelStats()
        return stats

    def track(self, name: str) -> None:
        """Start reporting a model (with zero counts) before its first request."""
        with self._lock:
            self._model(name)

    def forget(self, name: str) -> None:
        """Stop reporting a model that was unregistered."""
        with self._lock:
            self._models.pop(name, None)

    def _attempt(self, event: AttemptFinished) -> None:
        stats = self._model(event.model)
        stats.attempts += 1
        stats.last_used = time.time()
        if event.cancelled:
            stats.cancelled += 1
        elif event.error is None:
            stats.successes += 1
            stats.latency_sum += event.duration
            stats.latencies.append(event.duration)
        else:
            stats.failures += 1
            error = event.error
            stats.last_error = type(error).__name__
            if isinstance(error, InvalidResponseError):
                self._invalid[error.reason] += 1

    def _retry(self, event: RetryScheduled) -> None:
        self._retries += 1
        self._model(event.model).retries += 1

    def _fallback(self, event: FallbackTaken) -> None:
        self._fallbacks[event] += 1  # the event is the tuple (from_model, to_model, reason)

    def _fallback_counts(self) -> dict[str, Any]:
        """Fallbacks in total, by ``"from->to"`` pair and by reason (call under the lock)."""
        pairs: Counter[tuple[str, str | None]] = Counter()
        reasons: Counter[str] = Counter()
        for (a, b, reason), n in self._fallbacks.items():
            pairs[(a, b)] += n
            reasons[str(reason)] += n
        return {
            "total": sum(pairs.values()),
            "by_pair": {
                f"{a}->{b if b is not None else '(none)'}": n
                for (a, b), n in sorted(pairs.items(), key=str)
            },
            "by_reason": dict(sorted(reasons.items())),
        }

    def _hedge(self, event: HedgeStarted) -> None:
        self._hedges[(event.model, event.hedge_model)] += 1

    def _transition(self, event: BreakerTransition) -> None:
        self._transitions += 1
        stats = self._model(event.model)
        stats.breaker_state = event.new
        if event.new is BreakerState.OPEN:
            stats.breaker_opens += 1

    def _cache_hit(self, event: CacheHit) -> None:
        self._cache_hits += 1
        self._requests += 1
        self._succeeded += 1

    def _cache_miss(self, event: CacheMiss) -> None:
        self._cache_misses += 1

    def _cache_error(self, event: CacheError) -> None:
        self._cache_errors += 1

    def _request(self, event: RequestFinished) -> None:
        self._requests += 1
        usage = event.usage
        if usage is not None:
            self._input_tokens += usage.input_tokens
            self._output_tokens += usage.output_tokens
        if event.model is None:
            if event.cancelled:
                self._cancelled += 1
            else:
                self._failed += 1
            return
        self._succeeded += 1
        self._latencies.append(event.latency)
        stats = self._model(event.model)
        stats.served += 1
        if usage is not None:
            stats.input_tokens += usage.input_tokens
            stats.output_tokens += usage.output_tokens

    def recent_latencies(self, name: str) -> list[float]:
        """Seconds taken by ``name``'s recent successful attempts (the latency window)."""
        with self._lock:
            stats = self._models.get(name)
            return [] if stats is None else list(stats.latencies)

    def model_stats(self, name: str) -> dict[str, Any]:
        """Counts, latency and breaker facts of one model."""
        with self._lock:
            return self._model_dict(self._model(name))

    @staticmethod
    def _model_dict(stats: _ModelStats) -> dict[str, Any]:
        lat = percentiles(stats.latencies)
        return {
            "attempts": stats.attempts,
            "success_count": stats.successes,
            "failure_count": stats.failures,
            "cancelled_attempts": stats.cancelled,
            "retries": stats.retries,
            "requests_served": stats.served,
            "avg_latency": stats.latency_sum / stats.successes if stats.successes else None,
            "p95_latency": lat["p95"],
            "latency": lat,
            "last_used": (
                None
                if stats.last_used is None
                else datetime.fromtimestamp(stats.last_used, UTC).isoformat()
            ),
            "last_error_type": stats.last_error,
            "breaker_state": stats.breaker_state.value,
            "breaker_opens": stats.breaker_opens,
            "tokens": {
                "input": stats.input_tokens,
                "output": stats.output_tokens,
                "total": stats.input_tokens + stats.output_tokens,
            },
        }

    def snapshot(self, cache_size: int | None) -> dict[str, Any]:
        """The full metrics dict (see `LLMManager.get_metrics`)."""
        with self._lock:
            lookups = self._cache_hits + self._cache_misses
            return {
                "total_requests": self._requests,
                "successful_requests": self._succeeded,
                "failed_requests": self._failed,
                "cancelled_requests": self._cancelled,
                # Of the requests that reached an outcome: a cancelled request (a client that
                # went away, an abandoned stream) is neither a success nor a failure.
                "success_rate": (
                    self._succeeded / (self._succeeded + self._failed)
                    if self._succeeded + self._failed
                    else None
                ),
                "cache": {
                    "hits": self._cache_hits,
                    "misses": self._cache_misses,
                    "hit_rate": self._cache_hits / lookups if lookups else None,
                    "errors": self._cache_errors,
                    "size": cache_size,
                },
                "retries": self._retries,
                "fallbacks": self._fallback_counts(),
                "breaker_transitions": self._transitions,
                "hedges": {
                    "total": sum(self._hedges.values()),
                    "by_pair": {f"{a}->{b}": n for (a, b), n in sorted(self._hedges.items())},
                },
                "invalid_responses": {
                    "total": sum(self._invalid.values()),
                    "by_reason": dict(sorted(self._invalid.items())),
                },
                "latency": percentiles(self._latencies),
                "tokens": {
                    "input": self._input_tokens,
                    "output": self._output_tokens,
                    "total": self._input_tokens + self._output_tokens,
                },
                "models": {n: self._model_dict(s) for n, s in sorted(self._models.items())},
            }
