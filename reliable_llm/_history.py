"""A bounded time series of what the manager did, for plots and incident reviews."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reliable_llm._breaker import BreakerState
from reliable_llm._events import (
    BreakerTransition,
    CacheHit,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)

if TYPE_CHECKING:
    from reliable_llm._manager import LLMManager

__all__ = ["MetricsHistory", "RequestRecord", "StateRecord"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request: when (seconds since recording began), who served it, how long."""

    time: float
    requested: str
    served_by: str | None
    latency: float
    cached: bool


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A breaker transition of ``model`` at ``time``."""

    time: float
    model: str
    state: BreakerState


class MetricsHistory:
    """Records requests, retries, fallbacks and breaker transitions with their times.

    Attach it to a manager (``history = MetricsHistory(manager)``); it reads time from the
    manager's clock, so a fake clock gives a reproducible timeline. Memory is bounded by
    ``max_records`` per series.

    Attributes:
        requests: Finished requests, oldest first.
        retries: Times at which a retry was scheduled.
        fallbacks: ``(time, from_model, to_model)`` of every fallback.
        states: Breaker transitions; every model starts closed at time 0.
    """

    def __init__(self, manager: LLMManager, max_records: int = 100_000) -> None:
        self._manager = manager
        self._clock = manager.clock
        self._origin = self._clock.monotonic()
        self._lock = threading.Lock()
        self.requests: deque[RequestRecord] = deque(maxlen=max_records)
        self.retries: deque[float] = deque(maxlen=max_records)
        self.fallbacks: deque[tuple[float, str, str | None]] = deque(maxlen=max_records)
        self.states: deque[StateRecord] = deque(maxlen=max_records)
        manager.add_hook(self)

    @property
    def models(self) -> tuple[str, ...]:
        """The manager's models, in registration order."""
        return tuple(self._manager.list_models())

    def now(self) -> float:
        """Seconds since recording began, on the manager's clock."""
        return self._clock.monotonic() - self._origin

    def __call__(self, event: Event) -> None:
        """Record one event."""
        now = self.now()
        with self._lock:
            if isinstance(event, RequestFinished):
                self.requests.append(
                    RequestRecord(now, event.requested_model, event.model, event.latency, False)
                )
            elif isinstance(event, CacheHit):
                self.requests.append(RequestRecord(now, event.model, event.answered_by, 0.0, True))
            elif isinstance(event, RetryScheduled):
                self.retries.append(now)
            elif isinstance(event, FallbackTaken):
                self.fallbacks.append((now, event.from_model, event.to_model))
            elif isinstance(event, BreakerTransition):
                self.states.append(StateRecord(now, event.model, event.new))

    def __len__(self) -> int:
        return len(self.requests)

    def __repr__(self) -> str:
        return (
            f"MetricsHistory(requests={len(self.requests)}, retries={len(self.retries)}, "
            f"fallbacks={len(self.fallbacks)}, transitions={len(self.states)})"
        )
