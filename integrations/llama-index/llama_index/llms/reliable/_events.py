"""reliable-llm's retries, fallbacks, breaker transitions and cache hits as LlamaIndex events.

A manager hook translates the core's events into `BaseEvent` subclasses and hands them to
LlamaIndex's instrumentation dispatcher, so a user's event handlers (and any observability
integration listening to the root dispatcher) see them next to the LLM start/end events.
The events are emitted while the LLM call runs, so they carry that call's ``span_id``.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

# llama-index-core re-exports get_dispatcher without __all__; importing it from core keeps our
# dependency on llama-index-core alone.
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import NullEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from reliable_llm import LLMManager
from reliable_llm.adapters import trace_attributes
from reliable_llm.events import (
    BreakerTransition,
    CacheHit,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)

__all__ = [
    "ReliableBreakerTransitionEvent",
    "ReliableCacheHitEvent",
    "ReliableFallbackEvent",
    "ReliableRequestEvent",
    "ReliableRetryEvent",
    "install_event_bridge",
]

dispatcher = get_dispatcher(__name__)


class ReliableRetryEvent(BaseEvent):
    """A model's attempt failed and the manager will call it again after ``delay`` seconds.

    Attributes:
        model: The registered model being retried.
        attempt: The number of the attempt that failed (1 for the first).
        delay: Seconds waited before the next attempt.
        error: The error type of the failed attempt (``"RateLimitError"``, ...).
    """

    model: str
    attempt: int
    delay: float
    error: str

    @classmethod
    def class_name(cls) -> str:
        """Return the class name."""
        return "ReliableRetryEvent"


class ReliableFallbackEvent(BaseEvent):
    """A model was given up for ``reason``; ``to_model`` is tried next (None: none is left).

    Attributes:
        from_model: The model given up.
        to_model: The next model of the fallback chain, or None.
        reason: Why (``"retries_exhausted"``, ``"circuit_open"``, ``"non_retryable"``, ...).
    """

    from_model: str
    to_model: str | None
    reason: str

    @classmethod
    def class_name(cls) -> str:
        """Return the class name."""
        return "ReliableFallbackEvent"


class ReliableBreakerTransitionEvent(BaseEvent):
    """A model's circuit breaker changed state (``"closed"``, ``"open"``, ``"half_open"``)."""

    model: str
    old_state: str
    new_state: str

    @classmethod
    def class_name(cls) -> str:
        """Return the class name."""
        return "ReliableBreakerTransitionEvent"


class ReliableCacheHitEvent(BaseEvent):
    """A request for ``model`` was answered from the response cache."""

    model: str

    @classmethod
    def class_name(cls) -> str:
        """Return the class name."""
        return "ReliableCacheHitEvent"


class ReliableRequestEvent(BaseEvent):
    """One request ended: how it was served, for tracing (LangSmith-style run metadata).

    Emitted once per request, answered from the cache or upstream, succeeded or not, inside
    the LLM call's span.

    Attributes:
        model: The model requested (the first of the route).
        attributes: `reliable_llm.adapters.trace_attributes`: ``reliable_llm.outcome``,
            ``reliable_llm.response.model`` (the model that answered), ``reliable_llm.route``
            (upstream requests), ``reliable_llm.cache.hit``, ``reliable_llm.attempts``,
            ``reliable_llm.retries``, ``reliable_llm.fallback.models`` and ``.reasons``,
            ``reliable_llm.cost``; the keys of the LangChain adapter's run metadata and of
            the OpenTelemetry request span.
    """

    model: str
    attributes: dict[str, Any]

    @classmethod
    def class_name(cls) -> str:
        """Return the class name."""
        return "ReliableRequestEvent"


_BRIDGED = (RetryScheduled, FallbackTaken, BreakerTransition, CacheHit, RequestFinished)


def to_llama_index_event(event: Event) -> BaseEvent | None:
    """The LlamaIndex event for a core event, or None for events LlamaIndex already covers."""
    if isinstance(event, RetryScheduled):
        return ReliableRetryEvent(
            model=event.model, attempt=event.attempt, delay=event.delay, error=event.error
        )
    if isinstance(event, FallbackTaken):
        return ReliableFallbackEvent(
            from_model=event.from_model, to_model=event.to_model, reason=event.reason.value
        )
    if isinstance(event, BreakerTransition):
        return ReliableBreakerTransitionEvent(
            model=event.model, old_state=event.old.value, new_state=event.new.value
        )
    if isinstance(event, CacheHit):
        return ReliableCacheHitEvent(model=event.model)
    if isinstance(event, RequestFinished):
        return _request_event(event)
    return None


def _request_event(event: RequestFinished) -> ReliableRequestEvent:
    response = event.response
    failures = event.failures
    attempts = event.attempts
    attributes = trace_attributes(
        answered_by=event.model,
        cached=False,
        attempts=len(attempts),
        retries=sum(1 for a in attempts if a.number > 1),
        given_up=[f.model for f in failures],
        reasons=[str(f.reason) for f in failures],
        route=event.route,
        cost=None if response is None else response.cost,
        cancelled=event.cancelled,
    )
    return ReliableRequestEvent(model=event.requested_model, attributes=attributes)


def _hit_event(event: CacheHit) -> ReliableRequestEvent:
    attributes = trace_attributes(
        answered_by=event.answered_by, cached=True, attempts=0, retries=0, given_up=(), reasons=()
    )
    return ReliableRequestEvent(model=event.model, attributes=attributes)


def _listened() -> bool:
    """Whether a handler would see our events: the dispatcher walk of `Dispatcher.event`."""
    current: Any = dispatcher
    while current is not None:
        if any(not isinstance(h, NullEventHandler) for h in current.event_handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def _bridge(event: Event) -> None:
    # Building a pydantic event costs more than the cache hit it reports; skip it when no
    # handler is listening.
    if not isinstance(event, _BRIDGED) or not _listened():
        return
    li_event = to_llama_index_event(event)
    if li_event is not None:
        dispatcher.event(li_event)
    if isinstance(event, CacheHit):  # a cache hit is a whole request too
        dispatcher.event(_hit_event(event))


_installed: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def install_event_bridge(manager: LLMManager) -> None:
    """Forward ``manager``'s events to LlamaIndex instrumentation (once per manager)."""
    with _lock:
        if manager in _installed:
            return
        _installed.add(manager)
    manager.add_hook(_bridge)
