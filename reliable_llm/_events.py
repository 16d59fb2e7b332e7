"""Small immutable events emitted by every layer; hooks and the metrics collector consume them.

Events are named tuples: cheap to build on the per-call path, and read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeAlias

from reliable_llm._breaker import BreakerState
from reliable_llm._errors import ConfigurationError, FailureReason, ModelFailure
from reliable_llm._types import Attempt, ChatRequest, ChatResponse, Usage

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
    "check_hook",
]


AttemptFinished: TypeAlias = Attempt
"""One upstream call ended: the same `Attempt` record that `ChatResponse.attempts` holds
(``model``, ``number``, ``duration`` and ``error``, the `ProviderError` or None)."""


class RetryScheduled(NamedTuple):
    """The manager will call ``model`` again after ``delay`` seconds."""

    model: str
    attempt: int
    delay: float
    error: str


class FallbackTaken(NamedTuple):
    """``from_model`` was given up for ``reason``; ``to_model`` is tried next (None: none left)."""

    from_model: str
    to_model: str | None
    reason: FailureReason


class HedgeStarted(NamedTuple):
    """``model`` had not answered after ``delay`` seconds: the same request went to
    ``hedge_model`` too (see `HedgePolicy`); the first complete answer wins."""

    model: str
    hedge_model: str
    delay: float


class BreakerTransition(NamedTuple):
    """A model's circuit breaker changed state."""

    model: str
    old: BreakerState
    new: BreakerState


class CacheHit(NamedTuple):
    """A request was answered from the cache (or by an identical request in flight).

    A cache hit is a finished, successful request: no `RequestFinished` follows it.
    ``model`` is the requested model, ``answered_by`` the model whose answer was reused.
    """

    model: str
    answered_by: str


class CacheMiss(NamedTuple):
    """A cacheable request was not in the cache."""

    model: str


class CacheError(NamedTuple):
    """The cache backend failed (``operation`` ``"get"`` or ``"set"``) or held an unreadable
    entry (``"decode"``, the entry is evicted). The request went on as a cache miss."""

    model: str
    operation: str
    error: str


class RequestFinished(NamedTuple):
    """A request that went upstream ended: answered (``model`` says by whom) or not (None).

    ``cancelled`` is True when it ended without an outcome (task cancelled, stream abandoned,
    ``KeyboardInterrupt``); ``usage`` then holds the tokens reported before it ended, if any.
    ``latency`` is in seconds.

    For exporters, the request's record: its ``attempts`` (in order), the models given up and
    why (``failures``), the ``response`` (None when none; the caller's own object, to read,
    not change), the ``request`` sent, the ``route`` of registered names and its time budget
    (``timeout``, seconds). The record is filled whenever a hook is installed besides the
    manager's own collector (it costs nothing otherwise); the fields keep their defaults when
    none is.
    """

    requested_model: str
    model: str | None
    latency: float
    usage: Usage | None = None
    stream: bool = False
    cancelled: bool = False
    attempts: tuple[Attempt, ...] = ()
    failures: tuple[ModelFailure, ...] = ()
    response: ChatResponse | None = None
    request: ChatRequest | None = None
    route: tuple[str, ...] = ()
    timeout: float = 0.0


Event = (
    Attempt
    | RetryScheduled
    | FallbackTaken
    | HedgeStarted
    | BreakerTransition
    | CacheHit
    | CacheMiss
    | CacheError
    | RequestFinished
)
EventHook = Callable[[Event], None]


def check_hook(hook: object) -> None:
    """Raise `ConfigurationError` unless ``hook`` is a sync callable ``hook(event)``."""
    from reliable_llm._callable import is_async_callable

    if not callable(hook):
        raise ConfigurationError(f"hooks must be callables hook(event), got {hook!r}")
    if is_async_callable(hook):
        raise ConfigurationError(
            f"hook {hook!r} is an async function; hooks are called synchronously, so it would "
            "never run. Use a sync hook (it may schedule a coroutine with "
            "asyncio.get_running_loop().create_task)"
        )
