"""A shared breaker whose policy reads a sliding window: failure rate and slow calls, fleet-wide.

`WindowedSharedBreaker` is the `SharedBreaker` of a model whose `BreakerPolicy` sets
``failure_rate_threshold`` or ``slow_call_duration_threshold``. Every ordinary outcome goes to
the fleet's window in Redis (``WINDOW_OUTCOME`` of `_redis_lua_windows`: one round trip, the
rules decided in the script on Redis ``TIME``), with the same rules, fields and vocabulary as
the in-process breaker (`reliable_llm._windows`, resilience4j's): whether a call was slow is
measured here (its `Attempt` latency on the injected clock) and sent as a flag. Trials, the
generation rule and the cooldowns are the `SharedBreaker`'s; a slow half-open trial re-opens
the fleet's breaker. While Redis is unavailable, the in-process window decides alone.

A separate class so a breaker without these rules pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from reliable_llm._breaker import Admission, ModelBreaker, Ticket, TransitionHook, Trial, _latency
from reliable_llm._clock import Clock
from reliable_llm._policies import BreakerPolicy
from reliable_llm.backends._redis_breaker import SharedBreaker, _cooldown_ms, _ms
from reliable_llm.backends._redis_link import Link

if TYPE_CHECKING:
    from reliable_llm._types import Attempt

__all__ = ["WindowedSharedBreaker"]

_ALLOWED = Admission.ALLOWED


class WindowedSharedBreaker(SharedBreaker):
    """The shared breaker of a model whose policy sets a failure-rate or slow-call rule."""

    __slots__ = ("_counts", "_window_args")

    def __init__(
        self,
        model: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_change: TransitionHook | None,
        link: Link,
        random: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(model, policy, clock, on_change, link, random)
        self._keys = (*self._keys, f"{link.namespace}:window:{model}")
        count_based = policy.sliding_window_type == "count_based"
        size = policy.sliding_window_size
        rate = policy.failure_rate_threshold
        slow_rate = (
            "" if policy.slow_call_duration_threshold is None else policy.slow_call_rate_threshold
        )
        self._window_args: tuple[object, ...] = (
            "" if rate is None else rate,
            slow_rate,
            policy.minimum_number_of_calls,
            "c" if count_based else "t",
            size if count_based else size * 1000,  # calls, or the span in Redis ms
        )
        self._counts = (0, 0, 0)  # the fleet's window: calls, failed, slow (last seen)

    def _adopt(self, answer: tuple[int, ...]) -> None:
        if len(answer) == 8:
            self._counts = (answer[5], answer[6], answer[7])
        super()._adopt(answer[:5])  # type: ignore[arg-type]

    def _slow(self, call: Attempt | None) -> bool:
        slow_after = self._slow_after
        return slow_after is not None and _latency(call) > slow_after

    def _outcome(
        self, admission: Ticket, failed: bool, cooldown: float | None, call: Attempt | None
    ) -> None:
        """Send an ordinary call's outcome to the fleet's window (one round trip)."""
        policy = self.policy
        cap = policy.max_recovery_timeout
        args = (
            self._admitted.get(self._gen),
            int(failed),
            int(self._slow(call)),
            _cooldown_ms(cooldown),
            policy.failure_threshold,
            _ms(policy.recovery_timeout),
            0 if cap is None else _ms(cap),
            int(policy.recovery_jitter * self._draw() * 1000),
            *self._window_args,
        )
        if failed:
            fallback = lambda: self._alone(ModelBreaker.record_failure, admission, call)  # noqa: E731
        else:
            fallback = lambda: self._alone(ModelBreaker.record_success, admission, call)  # noqa: E731
        self._ask("WINDOW_OUTCOME", args, fallback)

    def record_success(self, admission: Ticket, call: Attempt | None = None) -> None:
        """Record that an admitted call succeeded: counted in the fleet's window (slow when
        its latency exceeds ``slow_call_duration_threshold``); a trial closes the fleet's
        breaker, or re-opens it when slow."""
        if admission is _ALLOWED:
            self._outcome(admission, False, None, call)
        elif type(admission) is Trial and admission.shared is None:
            ModelBreaker.record_success(self, admission, call)  # granted while Redis was down
        elif self._slow(call):
            SharedBreaker._fail(self, admission, None, call)  # a slow trial re-opens
        else:
            super().record_success(admission, call)

    def _fail(self, admission: Ticket, cooldown: float | None, call: Attempt | None = None) -> None:
        if admission is _ALLOWED:
            self._cool(cooldown)
            self._outcome(admission, True, cooldown, call)
        else:
            super()._fail(admission, cooldown, call)

    def rates(self) -> tuple[int, float | None, float | None]:
        """The fleet's window (as last seen; `snapshot` reads it afresh): calls, failure and
        slow-call rates in percent; this process's own window while Redis is unavailable."""
        if self._link.down_since is not None:
            return super().rates()
        calls, failed, slow = self._counts
        if not calls:
            return 0, None, None
        return calls, round(failed * 100 / calls, 2), round(slow * 100 / calls, 2)

    def snapshot(self) -> dict[str, object]:
        """The fleet's state, failures, window and policy (a round trip; this process's view
        while Redis is unavailable)."""
        link = self._link
        if link.usable():
            try:
                answer = link.scripts["WINDOW_PEEK"](keys=self._keys, args=self._window_args[3:])
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
                self._adopt(tuple(int(x) for x in answer))
        return ModelBreaker.snapshot(self)

    def reset(self) -> None:
        """Close the breaker and forget its failures and window, here and in Redis."""
        self._counts = (0, 0, 0)
        super().reset()
