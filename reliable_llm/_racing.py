"""Attempts that a waiting caller may abandon while they run in a worker thread.

A sync hedged request runs each contender's attempt loop in a worker thread; the caller
stops waiting for the loser at any moment. `RacingAttempts` makes sure each attempt is
recorded exactly once and a half-open trial freed exactly once, whichever thread gets there
first.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from reliable_llm._attempts import ModelAttempts
from reliable_llm._breaker import Ticket
from reliable_llm._types import ChatResponse

if TYPE_CHECKING:
    from reliable_llm._engine import Engine
    from reliable_llm._plan import Plan
    from reliable_llm._registry import ModelEntry

__all__ = ["RacingAttempts"]


class RacingAttempts(ModelAttempts):
    """`ModelAttempts` run in a worker thread that the caller may abandon at any moment.

    Exactly one thread records each attempt and frees the half-open trial: the worker, when
    it claimed its attempt's outcome before the caller abandoned it; otherwise the caller (the
    attempt as cancelled). After abandonment the worker records nothing and starts no new
    attempt. The lock is held for a few instructions only, never around a provider call, a
    validator, a classifier or a hook.
    """

    __slots__ = ("abandoned", "lock", "released", "settling")

    def __init__(self, engine: Engine, entry: ModelEntry, plan: Plan, admission: Ticket) -> None:
        super().__init__(engine, entry, plan, admission)
        self.lock = threading.Lock()
        self.abandoned = False
        self.settling = False  # the worker is recording its attempt's outcome
        self.released = False

    def start(self) -> float | None:
        with self.lock:
            if self.abandoned:
                return None
            self.settling = True  # abandon() now leaves this attempt to the worker
        try:
            return super().start()  # may start a tracer's span: never under our lock
        finally:
            self.settling = False

    def _claim(self) -> bool:
        with self.lock:
            if self.abandoned:
                return False  # the caller records this attempt, as cancelled
            self.settling = True
            return True

    def failed(self, exc: Exception) -> float | None:
        if not self._claim():
            return None
        try:
            return super().failed(exc)
        finally:
            self.settling = False

    def succeeded(self, response: ChatResponse) -> ChatResponse | None:
        if not self._claim():
            return None  # lost the race: the answer is discarded
        try:
            return super().succeeded(response)
        finally:
            self.settling = False

    def release(self) -> None:
        """The attempts are over (in the worker, or in the reader of a stream that won):
        release unless the caller already did on abandoning them."""
        with self.lock:
            if self.released:
                return
            self.released = True
        super().release()

    def abandon(self) -> None:
        """Stop waiting for this contender (from the caller's thread): record its attempt in
        flight as cancelled and free its half-open trial; its worker's outcome is discarded.
        A worker already recording an outcome finishes that and releases on its own."""
        with self.lock:
            self.abandoned = True
            if self.released or self.settling:
                return
            self.released = True
        super().release()
