"""Events emitted by the manager, for hooks: ``LLMManager(hooks=[my_hook])``."""

from __future__ import annotations

from reliable_llm._events import (
    AttemptFinished,
    BreakerTransition,
    CacheError,
    CacheHit,
    CacheMiss,
    Event,
    EventHook,
    FallbackTaken,
    HedgeStarted,
    RequestFinished,
    RetryScheduled,
)

__all__ = [
    "AttemptFinished",
    "BreakerTransition",
    "CacheError",
    "CacheHit",
    "CacheMiss",
    "Event",
    "EventHook",
    "FallbackTaken",
    "HedgeStarted",
    "RequestFinished",
    "RetryScheduled",
]
