"""A model's retry budget: retries capped at a share of its recent requests.

Envoy's ``retry_budget`` caps retries at ``budget_percent`` (default 20%) of the requests in
flight, with ``min_retry_concurrency`` (default 3) so low traffic can still retry; Linkerd's
and Finagle's budgets count the same share over a sliding time window (``ttl``, 10 s). We
count over a window too: a model's requests and retries are not simultaneous in flight
(a retry follows its request after a backoff), so a share of recent requests is what bounds
the load retries add.
"""

from __future__ import annotations

import math
import threading

from reliable_llm._clock import Clock
from reliable_llm._policies import RetryPolicy
from reliable_llm._windows import TimeWindow

__all__ = ["RetryBudget"]

_REQUEST = (1, 0)
_RETRY = (0, 1)


class RetryBudget:
    """The requests and retries of one model in the last ``retry_budget_window`` seconds.

    Thread-safe; its lock is held only for a few counter updates.
    """

    __slots__ = ("_clock", "_lock", "_window", "min_retries", "percent")

    def __init__(self, percent: float, min_retries: int, window: float, clock: Clock) -> None:
        self.percent = percent
        self.min_retries = min_retries
        self._clock = clock
        self._lock = threading.Lock()
        self._window = TimeWindow(window, 2)

    @classmethod
    def for_policy(cls, policy: RetryPolicy, clock: Clock) -> RetryBudget | None:
        """The budget ``policy`` asks for, or None when it sets no ``retry_budget_percent``."""
        percent = policy.retry_budget_percent
        if percent is None:
            return None
        return cls(percent, policy.retry_budget_min_retries, policy.retry_budget_window, clock)

    def _allowed(self, requests: int) -> int:
        return max(self.min_retries, math.floor(requests * self.percent / 100.0))

    def deposit(self) -> None:
        """Count one request to this model (its first attempt)."""
        now = self._clock.monotonic()
        with self._lock:
            self._window.add(now, _REQUEST)

    def try_spend(self) -> bool:
        """Count one retry if the budget allows it; False (nothing counted) when it is spent."""
        now = self._clock.monotonic()
        with self._lock:
            window = self._window
            _, (requests, retries) = window.read(now)
            if retries >= self._allowed(requests):
                return False
            window.add(now, _RETRY)
            return True

    def snapshot(self) -> dict[str, object]:
        """``requests`` and ``retries`` in the window and the ``allowed`` retries, as a dict."""
        now = self._clock.monotonic()
        with self._lock:
            _, (requests, retries) = self._window.read(now)
        return {
            "percent": self.percent,
            "window": self._window.span,
            "requests": requests,
            "retries": retries,
            "allowed": self._allowed(requests),
        }

    def __repr__(self) -> str:
        return f"RetryBudget(percent={self.percent:g}, min_retries={self.min_retries})"
