"""Per-model circuit breaker on pybreaker's state machine, with admission done around the I/O.

pybreaker's ``call()`` holds a lock for the whole call (so concurrent calls run one at a time)
and has no asyncio support. We use its states, storage, counters and listeners, but decide
admission and record outcomes ourselves, holding our lock only for those few instructions.
Time comes from the injected clock, so recovery timeouts run on a fake clock in tests.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Any

from reliable_llm._clock import Clock
from reliable_llm._errors import CircuitOpenError, ProviderError
from reliable_llm._policies import BreakerPolicy

__all__ = ["Admission", "BreakerState", "ModelBreaker", "Ticket", "Trial"]


class BreakerState(enum.StrEnum):
    """The three states of a circuit breaker (pybreaker's state names)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Admission(enum.Enum):
    """The breaker's answer to "may I call the model now?" (a half-open trial gets a `Trial`)."""

    ALLOWED = "allowed"
    REJECTED = "rejected"


class Trial:
    """The ticket of one half-open trial call: a lease that ends at ``expires_at``.

    Only the holder of the current ticket can close or re-open the breaker. A ticket whose
    lease ran out (its call was lost to something nobody foresaw) no longer blocks the next
    trial, and its late outcome is ignored.
    """

    __slots__ = ("expires_at", "shared")

    def __init__(self, expires_at: float, shared: str | None = None) -> None:
        self.expires_at = expires_at
        # The lease's token in a shared store (`reliable_llm.backends.RedisState`), if any.
        self.shared = shared

    def __repr__(self) -> str:
        return f"Trial(expires_at={self.expires_at:g})"


Ticket = Admission | Trial
"""What `ModelBreaker.admit` hands out: ALLOWED, REJECTED or a `Trial`."""


TransitionHook = Callable[[str, BreakerState, BreakerState], None]


def _pybreaker(owner: ModelBreaker, policy: BreakerPolicy) -> Any:
    """Build the pybreaker breaker; imported here so `import reliable_llm` stays fast."""
    import pybreaker

    class Listener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            old = BreakerState(old_state.name) if old_state is not None else BreakerState.CLOSED
            # Runs under pybreaker's lock (and often ours): only note it; `_flush` reports it.
            owner._on_transition(old, BreakerState(new_state.name))

    return pybreaker.CircuitBreaker(
        fail_max=policy.failure_threshold,
        reset_timeout=policy.recovery_timeout,
        listeners=[Listener()],
        name=owner.model,
    )


class ModelBreaker:
    """The circuit breaker of one model.

    Closed: calls run concurrently; ``failure_threshold`` consecutive failures open it.
    Open: calls are rejected without touching the model until ``recovery_timeout`` passes.
    Half-open: exactly one trial call at a time, holding a lease; success closes, failure
    re-opens, and a trial that ends any other way (or outlives its lease) frees the slot.

    Transitions are reported to ``on_change`` after every lock is released, so a listener may
    call back into the breaker (``reset()``, say) without deadlocking.
    """

    #: Whether admission asks another process (`reliable_llm.backends.RedisState`): the async
    #: drivers then await ``aadmit`` instead of calling `admit`.
    remote = False

    __slots__ = (
        "_cb",
        "_clock",
        "_lock",
        "_on_change",
        "_pending",
        "_trial",
        "_trial_at",
        "model",
        "policy",
        "state",
    )

    def __init__(
        self,
        model: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_change: TransitionHook | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._trial_at = 0.0  # when an open breaker lets its next trial through
        self._trial: Trial | None = None
        self._pending: list[tuple[BreakerState, BreakerState]] = []
        self.state = BreakerState.CLOSED
        self._cb = _pybreaker(self, policy)

    def _on_transition(self, old: BreakerState, new: BreakerState) -> None:
        self.state = new
        if new is BreakerState.OPEN:
            # Stored as a deadline, compared with >=: a fake clock advanced by exactly the
            # recovery timeout reaches it (now - opened_at < timeout may round the other way).
            self._trial_at = self._clock.monotonic() + self.policy.recovery_timeout
        if old is not new:
            self._pending.append((old, new))

    def _flush(self) -> None:
        """Report the transitions noted under the locks; call with no lock held."""
        while self._pending:
            try:
                old, new = self._pending.pop(0)
            except IndexError:  # another thread reported it first
                return
            if self._on_change is not None:
                self._on_change(self.model, old, new)

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted so far."""
        return int(self._cb.fail_counter)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return self._trial_at - self._clock.monotonic()

    def cooldown(self) -> float:
        """Seconds left of a Retry-After cooldown shared by the fleet that made `admit` reject
        (0: none; only `reliable_llm.backends.RedisState`'s breakers have cooldowns)."""
        return 0.0

    def snapshot(self) -> dict[str, object]:
        """State, failure count, policy and seconds until the next trial, as a plain dict."""
        return {
            "state": self.state.value,
            "failure_count": self.failure_count,
            "failure_threshold": self.policy.failure_threshold,
            "recovery_timeout": self.policy.recovery_timeout,
            "retry_in": round(max(self.retry_in(), 0.0), 3),
        }

    def admit(self, lease: float = 60.0) -> Ticket:
        """Decide whether a call may go to the model now.

        Args:
            lease: Seconds a half-open trial may hold the trial slot (the caller's per-attempt
                timeout); after that another request may take the trial.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return Admission.ALLOWED
        if state is BreakerState.OPEN and self._clock.monotonic() < self._trial_at:
            return Admission.REJECTED  # the common case while open: no lock needed
        with self._lock:
            state = self.state  # re-read: it may have changed before we locked
            if state is BreakerState.CLOSED:
                return Admission.ALLOWED
            now = self._clock.monotonic()
            if state is BreakerState.OPEN:
                if now < self._trial_at:
                    return Admission.REJECTED
                self._cb.half_open()
            trial = self._trial
            if trial is not None and now < trial.expires_at:
                ticket: Ticket = Admission.REJECTED
            else:
                ticket = self._trial = Trial(now + lease)
        self._flush()
        return ticket

    async def aadmit(self, lease: float = 60.0) -> Ticket:
        """`admit` for the async drivers; they await it only when `remote` is True (a shared
        breaker asks Redis without blocking the loop), otherwise they call `admit`."""
        return self.admit(lease)

    def check(self, lease: float = 60.0) -> Ticket:
        """Like `admit`, but raise `CircuitOpenError` instead of returning REJECTED."""
        admission = self.admit(lease)
        if admission is Admission.REJECTED:
            raise CircuitOpenError(self.model, self.retry_in())
        return admission

    def record_success(self, admission: Ticket) -> None:
        """Record that an admitted call succeeded."""
        if admission is Admission.ALLOWED and self.state is BreakerState.CLOSED:
            if self._cb.fail_counter:
                with self._lock:
                    self._cb._state_storage.reset_counter()
            return
        with self._lock:
            if admission is Admission.ALLOWED or admission is self._trial:
                self._cb._state_storage.reset_counter()
            if admission is self._trial:
                self._trial = None
                if self.state is BreakerState.HALF_OPEN:
                    self._cb.close()
        self._flush()

    def record_failure(self, admission: Ticket) -> None:
        """Record that an admitted call failed in a way that counts against the model."""
        with self._lock:
            if isinstance(admission, Trial):
                if admission is self._trial:
                    self._cb._inc_counter()
                    self._trial = None
                    if self.state is BreakerState.HALF_OPEN:
                        self._cb.open()
            else:
                self._cb._inc_counter()
                if (
                    self.state is BreakerState.CLOSED
                    and self._cb.fail_counter >= self.policy.failure_threshold
                ):
                    self._cb.open()
        self._flush()

    def record_neutral(self, admission: Ticket) -> None:
        """Record an outcome that says nothing about the model's health (or a cancelled call).

        A half-open trial that ends this way frees the trial slot for the next request.
        """
        if isinstance(admission, Trial):
            with self._lock:
                if admission is self._trial:
                    self._trial = None

    def record(self, admission: Ticket, error: ProviderError) -> None:
        """Record a failed call according to the error's classification."""
        if error.counts_against_breaker:
            self.record_failure(admission)
        else:
            self.record_neutral(admission)

    def reset(self) -> None:
        """Close the breaker and forget its failures."""
        with self._lock:
            self._trial = None
            if self.state is BreakerState.CLOSED:
                self._cb._state_storage.reset_counter()
            else:
                self._cb.close()
        self._flush()

    def __repr__(self) -> str:
        return (
            f"ModelBreaker(model={self.model!r}, state={self.state.value!r}, "
            f"failures={self.failure_count}/{self.policy.failure_threshold})"
        )
