"""Per-model circuit breaker on pybreaker's state machine, with admission done around the I/O.

pybreaker's ``call()`` holds a lock for the whole call (so concurrent calls run one at a time)
and has no asyncio support. We use its states, storage, counters and listeners, but decide
admission and record outcomes ourselves, holding our lock only for those few instructions.
Time comes from the injected clock, so recovery timeouts run on a fake clock in tests.

What opens the breaker is the policy's rule: consecutive failures (the default, pybreaker's
counter), or a failure or slow-call rate over a sliding window (`_windows`, resilience4j's
rules). How long it stays open is `BreakerPolicy.open_time`: fixed, or growing with each
consecutive opening (Envoy's outlier ejection). The panic threshold lets an open breaker
take its trial early when most of a request's route is open (`ModelBreaker.admit_in_panic`).
"""

from __future__ import annotations

import enum
import random as _random
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from reliable_llm._clock import Clock
from reliable_llm._errors import CircuitOpenError, ProviderError
from reliable_llm._policies import BreakerPolicy
from reliable_llm._windows import CountWindow, TimeWindow, Window

if TYPE_CHECKING:
    from reliable_llm._types import Attempt

__all__ = ["Admission", "BreakerState", "HasBreaker", "ModelBreaker", "Ticket", "Trial"]


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

_ALLOWED = Admission.ALLOWED
_REJECTED = Admission.REJECTED
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN


TransitionHook = Callable[[str, BreakerState, BreakerState], None]


class HasBreaker(Protocol):
    """A member of a route, as panic mode reads it (a registered model's entry)."""

    @property
    def breaker(self) -> ModelBreaker: ...


def _latency(call: Attempt | None) -> float:
    """A call's latency for the slow-call rule, in seconds: a stream's time to first chunk
    (how long a long answer takes to stream says nothing about the model's health), else
    the call's duration; 0 when there is no record."""
    if call is None:
        return 0.0
    first_chunk = call.first_chunk
    return call.duration if first_chunk is None else first_chunk


def _window(policy: BreakerPolicy) -> Window | None:
    """The sliding window of (failed, slow) outcomes the policy's rules read, if any."""
    if not policy.windowed:
        return None
    if policy.sliding_window_type == "time_based":
        return TimeWindow(float(policy.sliding_window_size), 2)
    return CountWindow(policy.sliding_window_size, 2)


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

    Closed: calls run concurrently; ``failure_threshold`` consecutive failures open it (or,
    when the policy sets them, a failure rate or a slow-call rate over its sliding window).
    Open: calls are rejected without touching the model for the policy's `open_time`.
    Half-open: exactly one trial call at a time, holding a lease; success closes, failure
    (or a slow success) re-opens, and a trial that ends any other way (or outlives its
    lease) frees the slot.

    Transitions are reported to ``on_change`` after every lock is released, so a listener may
    call back into the breaker (``reset()``, say) without deadlocking.
    """

    #: Whether admission asks another process (`reliable_llm.backends.RedisState`): the async
    #: drivers then await ``aadmit`` instead of calling `admit`.
    remote = False

    __slots__ = (
        "_cb",
        "_clock",
        "_ejections",
        "_fraction",
        "_jitter",
        "_lock",
        "_on_change",
        "_open_for",
        "_pending",
        "_random",
        "_slow_after",
        "_trial",
        "_trial_at",
        "_window",
        "model",
        "panic_threshold",
        "panic_trials",
        "policy",
        "state",
    )

    def __init__(
        self,
        model: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_change: TransitionHook | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._random = random or _random.random  # jitter of the open time, drawn unlocked
        self._jitter = policy.recovery_jitter > 0
        self._fraction = 0.0  # the latest random drawn for an opening's jitter
        self._lock = threading.Lock()
        self._trial_at = 0.0  # when an open breaker lets its next trial through
        self._trial: Trial | None = None
        self._pending: list[tuple[BreakerState, BreakerState]] = []
        self._ejections = 0  # consecutive openings since the breaker last closed
        self._open_for = policy.recovery_timeout  # seconds the latest opening lasts
        self._window = _window(policy)
        self._slow_after = policy.slow_call_duration_threshold
        self.panic_threshold = policy.panic_threshold
        self.panic_trials = 0
        self.state = BreakerState.CLOSED
        self._cb = _pybreaker(self, policy)

    def _on_transition(self, old: BreakerState, new: BreakerState) -> None:
        self.state = new
        window = self._window
        if new is BreakerState.OPEN:
            self._ejections += 1
            self._open_for = self.policy.open_time(self._ejections, self._fraction)
            # Stored as a deadline, compared with >=: a fake clock advanced by exactly the
            # recovery timeout reaches it (now - opened_at < timeout may round the other way).
            self._trial_at = self._clock.monotonic() + self._open_for
            if window is not None:
                window.clear()  # each state counts afresh (resilience4j resets on transitions)
        elif new is BreakerState.CLOSED:
            self._ejections = 0
            if window is not None:
                window.clear()
        if old is not new:
            self._pending.append((old, new))

    def _draw(self) -> float:
        """The random fraction for an opening's jitter; call with no lock held (it may be
        the user's ``random`` callable)."""
        return self._random() if self._jitter else 0.0

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

    @property
    def ejections(self) -> int:
        """Consecutive openings since the breaker last closed (Envoy's ejection count)."""
        return self._ejections

    def rates(self) -> tuple[int, float | None, float | None]:
        """Calls in the sliding window and their failure and slow-call rates in percent
        (None when the policy keeps no window or the window is empty)."""
        window = self._window
        if window is None:
            return 0, None, None
        now = self._clock.monotonic()
        with self._lock:
            calls, (failures, slow) = window.read(now)
        if not calls:
            return 0, None, None
        return calls, round(failures * 100 / calls, 2), round(slow * 100 / calls, 2)

    def snapshot(self) -> dict[str, object]:
        """State, counts, rates, policy and seconds until the next trial, as a plain dict.

        Keys: ``state``; ``failure_count`` (consecutive failures); ``failure_threshold`` and
        ``recovery_timeout`` (the policy's); ``retry_in`` (seconds until the next trial, 0
        unless open); ``open_time`` (seconds the latest opening lasts); ``ejections``
        (consecutive openings since it last closed); ``window_calls``, ``failure_rate`` and
        ``slow_call_rate`` (the sliding window's calls and rates in percent, None without a
        window); ``panic_trials`` (trials let through early by panic mode); ``cooldown``
        (seconds left of a Retry-After cooldown the fleet shares, 0 without one; see `cooldown`).
        """
        calls, failure_rate, slow_rate = self.rates()
        return {
            "state": self.state.value,
            "failure_count": self.failure_count,
            "failure_threshold": self.policy.failure_threshold,
            "recovery_timeout": self.policy.recovery_timeout,
            "retry_in": round(max(self.retry_in(), 0.0), 3),
            "open_time": round(self._open_for, 3),
            "ejections": self._ejections,
            "window_calls": calls if self._window is not None else None,
            "failure_rate": failure_rate,
            "slow_call_rate": slow_rate,
            "panic_trials": self.panic_trials,
            "cooldown": round(self.cooldown(), 3),
        }

    def admit(self, lease: float = 60.0) -> Ticket:
        """Decide whether a call may go to the model now.

        Args:
            lease: Seconds a half-open trial may hold the trial slot (the caller's per-attempt
                timeout); after that another request may take the trial.
        """
        state = self.state
        if state is _CLOSED:
            return _ALLOWED
        if state is _OPEN and self._clock.monotonic() < self._trial_at:
            return _REJECTED  # the common case while open: no lock needed
        ticket = self._admit_locked(lease, early=False)
        self._flush()
        return ticket

    def _admit_locked(self, lease: float, early: bool) -> Ticket:
        """Admission under the lock; ``early`` lets an open breaker's trial through now."""
        with self._lock:
            state = self.state  # re-read: it may have changed before we locked
            if state is BreakerState.CLOSED:
                return Admission.ALLOWED
            now = self._clock.monotonic()
            if state is BreakerState.OPEN:
                if now < self._trial_at and not early:
                    return Admission.REJECTED
                self._cb.half_open()
            trial = self._trial
            if trial is not None and now < trial.expires_at:
                return Admission.REJECTED
            ticket = self._trial = Trial(now + lease)
            if early:
                self.panic_trials += 1
            return ticket

    def admit_in_panic(self, route: Sequence[HasBreaker], lease: float = 60.0) -> Ticket:
        """Admission for a request `admit` rejected, in panic mode (Envoy's term).

        When fewer than ``panic_threshold`` percent of the breakers of ``route`` (the
        request's models, this one included) are closed, the open breaker lets its half-open
        trial through at once rather than waiting out its open time: still one trial at a
        time, so a dead model gets at most one call in flight. Otherwise, or without a panic
        threshold, REJECTED.

        Args:
            route: The request's route: objects with a ``breaker`` (the registered models).
            lease: Seconds the trial may hold the trial slot, as for `admit`.
        """
        if not self.panics(route):
            return Admission.REJECTED
        ticket = self._admit_locked(lease, early=True)
        self._flush()
        return ticket

    def panics(self, route: Sequence[HasBreaker]) -> bool:
        """Whether fewer than ``panic_threshold`` percent of the breakers of ``route`` are
        closed (False without a panic threshold). It reads each breaker's `state`: with
        `reliable_llm.backends.RedisState`, the fleet's states as this process last saw them."""
        threshold = self.panic_threshold
        if threshold is None:
            return False
        closed = 0
        for member in route:
            if member.breaker.state is BreakerState.CLOSED:
                closed += 1
        return closed * 100 < threshold * len(route)

    async def aadmit_in_panic(self, route: Sequence[HasBreaker], lease: float = 60.0) -> Ticket:
        """`admit_in_panic` for the async drivers (awaited when `remote` is True, as `aadmit`)."""
        return self.admit_in_panic(route, lease)

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

    def record_success(self, admission: Ticket, call: Attempt | None = None) -> None:
        """Record that an admitted call succeeded.

        ``call`` is its `Attempt` record, whose latency the slow-call rule reads (a stream's
        time to first chunk, else the call's duration): a call slower than the policy's
        ``slow_call_duration_threshold`` counts as slow, and a slow half-open trial re-opens
        the breaker.
        """
        if admission is _ALLOWED and self.state is _CLOSED:
            if self._window:
                self._tally(False, _latency(call))
            elif self._cb.fail_counter:
                with self._lock:
                    self._cb._state_storage.reset_counter()
            return
        slow_after = self._slow_after
        slow = slow_after is not None and _latency(call) > slow_after
        fraction = self._draw() if slow else 0.0
        with self._lock:
            if admission is _ALLOWED or admission is self._trial:
                self._cb._state_storage.reset_counter()
            if admission is self._trial:
                self._trial = None
                if self.state is BreakerState.HALF_OPEN:
                    if slow:
                        self._fraction = fraction
                        self._cb.open()
                    else:
                        self._cb.close()
        self._flush()

    def record_failure(self, admission: Ticket, call: Attempt | None = None) -> None:
        """Record that an admitted call failed in a way that counts against the model
        (``call``: its `Attempt` record, for the slow-call rule)."""
        if self._window and admission is _ALLOWED:
            self._tally(True, _latency(call))
            return
        if self._jitter:
            self._fraction = self._random()  # drawn unlocked: see `_draw`
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

    def _tally(self, failed: bool, seconds: float) -> None:
        """Add an ordinary call's outcome to the sliding window; open the breaker when the
        failure rate, the slow-call rate or (without a failure rate) the consecutive rule
        says so."""
        slow_after = self._slow_after
        slow = slow_after is not None and seconds > slow_after
        fraction = self._draw()
        now = self._clock.monotonic()
        policy = self.policy
        rate = policy.failure_rate_threshold
        window = self._window
        assert window is not None
        cb = self._cb
        with self._lock:
            if failed:
                cb._inc_counter()
            elif cb.fail_counter:
                cb._state_storage.reset_counter()
            if self.state is not _CLOSED:
                return  # admitted before the breaker opened: its window was cleared
            window.add(now, (int(failed), int(slow)))
            calls, (failures, slows) = window.read(now)
            if calls >= policy.minimum_number_of_calls:
                opens = (rate is not None and failures * 100 >= rate * calls) or (
                    slow_after is not None
                    and slows * 100 >= policy.slow_call_rate_threshold * calls
                )
            else:
                opens = False
            if not opens and failed and rate is None:
                opens = cb.fail_counter >= policy.failure_threshold  # the consecutive rule
            if opens:
                self._fraction = fraction
                cb.open()
        self._flush()

    def record_neutral(self, admission: Ticket) -> None:
        """Record an outcome that says nothing about the model's health (or a cancelled call).

        A half-open trial that ends this way frees the trial slot for the next request.
        """
        if isinstance(admission, Trial):
            with self._lock:
                if admission is self._trial:
                    self._trial = None

    def record(self, admission: Ticket, error: ProviderError, call: Attempt | None = None) -> None:
        """Record a failed call (``call``: its `Attempt` record) by the error's classification."""
        if error.counts_against_breaker:
            self.record_failure(admission, call)
        else:
            self.record_neutral(admission)

    def reset(self) -> None:
        """Close the breaker and forget its failures, its window and its ejections."""
        with self._lock:
            self._trial = None
            if self.state is BreakerState.CLOSED:
                self._cb._state_storage.reset_counter()
                if self._window:
                    self._window.clear()
            else:
                self._cb.close()  # the transition clears the window and the ejections
        self._flush()

    def __repr__(self) -> str:
        return (
            f"ModelBreaker(model={self.model!r}, state={self.state.value!r}, "
            f"failures={self.failure_count}/{self.policy.failure_threshold})"
        )
