"""A model's breaker shared by every process: pybreaker in the process, decisions in Redis.

`SharedBreaker` is a `ModelBreaker` (pybreaker's states, listeners and `BreakerTransition`
events) whose admissions and outcomes are decided by the Lua scripts of `_redis_lua`, one
round trip each, and mirrored into the local pybreaker state. Round trips:

- closed: one per admission (``ADMIT`` answers the fleet's state, failures and cooldown);
  a success costs nothing more unless failures were counted; a failure costs one.
- open, or cooling down after a Retry-After: none. The remaining window is cached locally
  (Redis ms turned into this process's monotonic seconds), and calls are rejected without
  asking Redis until it ends; the window is never shortened by a later answer.
- half-open: exactly one process holds the trial lease (``SET NX PX``, expiring after the
  per-attempt timeout, released however the trial ends).
- panic (``panic_threshold``): decided on the breaker states this process mirrors; the early
  trial is the fleet's one trial lease (``PANIC`` of `_redis_lua_windows`), one round trip.

The failure-rate and slow-call rules are `_redis_windows.WindowedSharedBreaker`'s. While
Redis is unavailable (see `Link`), the inherited in-process breaker decides alone.

On an event loop the loop never waits on Redis: the async drivers await `aadmit` (redis-py's
asyncio client), and an outcome recorded there (the attempt loop records synchronously) is
sent by a task on that loop, its answer mirrored when it comes.
"""

from __future__ import annotations

import contextvars
from asyncio import _get_running_loop
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from reliable_llm._breaker import (
    Admission,
    BreakerState,
    HasBreaker,
    ModelBreaker,
    Ticket,
    TransitionHook,
    Trial,
)
from reliable_llm._clock import Clock
from reliable_llm._errors import ProviderError, RateLimitError
from reliable_llm._policies import BreakerPolicy
from reliable_llm.backends._redis_link import Link
from reliable_llm.backends._redis_lua import ALLOWED, COOLING, TRIAL
from reliable_llm.backends._redis_pipeline import (
    Preadmitted,
    ascript,
    script,
    void_key,
    void_later,
    void_now,
    void_soon,
)

if TYPE_CHECKING:
    from reliable_llm._types import Attempt

__all__ = ["SharedBreaker", "cooldown_hint"]

_STATES = (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN)
_ALLOWED = Admission.ALLOWED
_REJECTED = Admission.REJECTED
Answer = tuple[int, int, int, int, int]  # verdict, state, generation, wait_ms, failures
Fallback = Callable[[], None] | None
Record = Callable[[ModelBreaker, Ticket, "Attempt | None"], None]


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


def _cooldown_ms(cooldown: float | None) -> int:
    """A cooldown for the scripts: 0 for none, else at least 1 ms (Redis rejects PX 0)."""
    return 0 if cooldown is None else _ms(cooldown)


def cooldown_hint(error: ProviderError) -> float | None:
    """Seconds every process should leave the model alone: a 429's or 503's retry hint."""
    hint = error.retry_after
    if hint is None or hint <= 0:
        return None
    if isinstance(error, RateLimitError) or error.status_code in (429, 503):
        return float(hint)
    return None


class SharedBreaker(ModelBreaker):
    """The breaker of one model, shared through Redis by every process that registers it."""

    remote = True  # the async drivers await `aadmit`

    __slots__ = (
        "_admitted",
        "_blocked_until",
        "_cool_until",
        "_failures",
        "_gen",
        "_keys",
        "_link",
        "_opened_alone",
        "_pre",
    )

    def __init__(
        self,
        model: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_change: TransitionHook | None,
        link: Link,
        random: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(model, policy, clock, on_change, random)
        self._link = link
        ns = link.namespace
        self._keys: tuple[str, ...] = (
            f"{ns}:breaker:{model}",
            f"{ns}:trial:{model}",
            f"{ns}:cooldown:{model}",
        )
        self._gen = 0
        # The generation each thread / task was last admitted under while closed: its
        # outcome counts only if the fleet's breaker has not moved on since.
        self._admitted: contextvars.ContextVar[int] = contextvars.ContextVar(
            f"reliable_llm_admitted_{model}"
        )
        # An admission decided in the request's first round trip, for its first attempt.
        self._pre: contextvars.ContextVar[Preadmitted | None] = contextvars.ContextVar(
            f"reliable_llm_preadmitted_{model}", default=None
        )
        self._failures = 0
        self._opened_alone = False  # opened by this process while Redis was unavailable
        # Until when (our monotonic seconds) the fleet's breaker is open or the model cools
        # down: admissions are rejected here without a round trip.
        self._blocked_until = 0.0
        self._cool_until = 0.0  # the part of it that is a Retry-After cooldown

    # -- mirroring the fleet's answer ------------------------------------------------------------

    def _adopt(self, answer: Answer) -> None:
        _, state, gen, wait_ms, failures = answer
        if state == 0 and self.state is BreakerState.OPEN and self._forgotten(gen):
            return
        self._opened_alone = False  # Redis knows the fleet's state now
        self._gen = gen
        self._failures = failures
        now = self._clock.monotonic()
        if wait_ms > 0:
            until = now + wait_ms / 1000.0
            if until > self._blocked_until:
                self._blocked_until = until
        new = _STATES[state]
        if new is self.state:
            if new is BreakerState.OPEN and wait_ms > 0:
                self._trial_at = max(self._trial_at, now + wait_ms / 1000.0)  # a new window
            return
        with self._lock:
            self._trial = None
            if new is BreakerState.OPEN:
                self._cb.open()
                # The fleet's window (its open time may have grown), not this process's.
                self._trial_at = now + wait_ms / 1000.0
                self._open_for = wait_ms / 1000.0
            else:
                # The fleet's window is over (a panic trial may end it early): only a
                # cooldown still rejects here without asking.
                self._blocked_until = self._cool_until
                if new is BreakerState.CLOSED:
                    self._cb.close()
                else:
                    self._cb.half_open()
        self._flush()

    def _forgotten(self, gen: int) -> bool:
        """Whether Redis says closed while this process holds an open window Redis never
        saw or lost: one opened here alone while Redis was unavailable, or any, when the
        fleet's generation went back (a restarted, flushed or failed-over Redis). The window
        is written back (a FAILURE that opens for the time left), never shortened."""
        if not (self._opened_alone or gen < self._gen):
            return False
        left = self._trial_at - self._clock.monotonic()
        if left <= 0:
            return False
        # Rejected here without asking until then, even before the write-back's answer.
        self._blocked_until = max(self._blocked_until, self._trial_at)
        self._ask("FAILURE", (gen, "", 1, _ms(left), 0, 0, 0))
        return True

    def _alone(self, record: Record, admission: Ticket, call: Attempt | None) -> None:
        """Record an outcome in this process only (Redis unavailable) with ``record`` (a
        `ModelBreaker` method), remembering whether it opened the breaker."""
        record(self, admission, call)
        if self.state is BreakerState.OPEN:
            self._opened_alone = True

    def _ask(self, script: str, args: tuple[object, ...], fallback: Fallback = None) -> None:
        """Have Redis decide (one round trip); ``fallback`` runs instead when it cannot.

        On an event loop's thread (the async drivers record outcomes synchronously) the round
        trip runs as a task on that loop, so the loop never waits on Redis; the answer is
        mirrored into this process when it comes.
        """
        link = self._link
        if not link.usable():
            if fallback is not None:
                fallback()
            return
        loop = _get_running_loop()
        if loop is not None:
            link.background(loop, self._aask(script, args, fallback))
            return
        try:
            answer = link.scripts[script](keys=self._keys, args=args)
        except link.errors as exc:
            link.failed(exc)
            if fallback is not None:
                fallback()
            return
        link.succeeded()
        self._adopt(tuple(int(x) for x in answer))  # type: ignore[arg-type]

    async def _aask(self, script: str, args: tuple[object, ...], fallback: Fallback) -> None:
        link = self._link
        try:
            answer = await link.ascript(script, self._keys, args)
        except link.errors as exc:
            link.failed(exc)
            if fallback is not None:
                fallback()
            return
        link.succeeded()
        self._adopt(tuple(int(x) for x in answer))  # type: ignore[arg-type]

    # -- the breaker -----------------------------------------------------------------------------

    def admit(self, lease: float = 60.0) -> Ticket:
        """Decide whether a call may go to the model now, for the whole fleet.

        Rejected at once, without a round trip, while the fleet's breaker is known to be
        open or the model cools down. A half-open trial is a lease on the fleet's one trial
        slot, held for ``lease`` seconds at most. An admission decided with the request's
        first round trip (`preadmit`) is taken here without another.
        """
        held = self._pre.get()
        if held is not None and (ticket := held.take()) is not None:
            return ticket
        if self._clock.monotonic() < self._blocked_until:
            return _REJECTED
        decided = self._guarded("GUARDED_ADMIT", lease) if self._link.usable() else None
        return super().admit(lease) if decided is None else self._ticket(*decided, lease)

    def _guarded(self, name: str, lease: float) -> tuple[list[object], str] | None:
        """Run the admission script ``name`` (``GUARDED_ADMIT`` or ``GUARDED_PANIC``): its
        answer and the caller's token, or None when Redis failed (decide in-process).

        Interrupted on the wire (Ctrl-C), the trial a late answer granted is freed before
        the interruption goes on; a failed or timed-out call's late command is voided."""
        link = self._link
        token = link.token()
        keys = (*self._keys, void_key(link, token))
        try:
            answer = script(link, name)(keys=keys, args=(_ms(lease), token))
        except link.errors as exc:
            link.failed(exc)
            void_soon(link, token, self._keys[1:2], _ms(lease))  # it may run late
            return None
        except BaseException:  # interrupted on the wire: a trial granted there is freed
            void_now(link, token, self._keys[1:2], _ms(lease))
            raise
        link.succeeded()
        return answer, token

    async def _aguarded(self, name: str, lease: float) -> tuple[list[object], str] | None:
        """Async twin of `_guarded`: a cancelled task frees its trial from a task of its loop."""
        link = self._link
        token = link.token()
        keys = (*self._keys, void_key(link, token))
        try:
            answer = await ascript(link, name, keys, (_ms(lease), token))
        except BaseException as exc:
            void_later(link, token, self._keys[1:2], _ms(lease))
            if not isinstance(exc, link.errors):
                raise
            link.failed(exc)
            return None
        link.succeeded()
        return answer, token

    async def aadmit(self, lease: float = 60.0) -> Ticket:
        """Async twin of `admit` (the asyncio client: the event loop never waits on Redis).

        A task cancelled (or a Redis call timed out) while the admission is on the wire
        frees the trial it may have been granted, from a task of its loop.
        """
        held = self._pre.get()
        if held is not None and (ticket := held.take()) is not None:
            return ticket
        if self._clock.monotonic() < self._blocked_until:
            return _REJECTED
        if self._link.usable():
            decided = await self._aguarded("GUARDED_ADMIT", lease)
            if decided is not None:
                return self._ticket(*decided, lease)
        return super().admit(lease)

    # -- pre-admission: the first attempt's ADMIT, run inside the request's first round trip --

    def admission_keys(self) -> tuple[str, ...] | None:
        """The keys ``ADMIT`` reads, or None when `admit` would reject without asking Redis."""
        if self._clock.monotonic() < self._blocked_until:
            return None
        return self._keys[:3]

    def preadmit(self, raw: list[object], token: str, lease: float) -> Preadmitted:
        """Offer the ``ADMIT`` answer ``raw`` (run with ``token``) to this thread's or task's
        next `admit`; the caller must `Preadmitted.close` it once the request is done."""
        return Preadmitted(self, self._ticket(raw, token, lease), self._pre)

    def _ticket(self, raw: list[object], token: str, lease: float) -> Ticket:
        """The ticket of an ``ADMIT`` answer, mirrored into this process first."""
        answer = [int(x) for x in raw]  # type: ignore[call-overload]
        self._adopt(answer)  # type: ignore[arg-type]
        verdict = answer[0]
        if verdict == ALLOWED:
            if self.state is BreakerState.OPEN:  # an open window Redis forgot: written back
                return _REJECTED
            self._admitted.set(answer[2])
            return _ALLOWED
        if verdict == COOLING:
            self._cool(answer[3] / 1000.0)
        if verdict == TRIAL:
            return Trial(self._clock.monotonic() + lease, f"{token}@{answer[2]}")
        return _REJECTED

    def admit_in_panic(self, route: Sequence[HasBreaker], lease: float = 60.0) -> Ticket:
        """Panic mode for the fleet: when fewer than ``panic_threshold`` percent of ``route``'s
        breakers are closed (their states as this process last mirrored them), the fleet's
        open breaker goes half-open now and this process may take its one trial lease, so the
        whole fleet sends at most one panic trial of this model at a time, each lasting at
        most ``lease`` seconds. A Retry-After cooldown is still respected."""
        if not self.panics(route):
            return _REJECTED
        link = self._link
        if not link.usable():
            return super().admit_in_panic(route, lease)
        if self._clock.monotonic() < self._cool_until:
            return _REJECTED
        decided = self._guarded("GUARDED_PANIC", lease)
        if decided is None:
            return super().admit_in_panic(route, lease)
        return self._panic_ticket(*decided, lease)

    async def aadmit_in_panic(self, route: Sequence[HasBreaker], lease: float = 60.0) -> Ticket:
        """Async twin of `admit_in_panic` (the asyncio client)."""
        if not self.panics(route):
            return _REJECTED
        link = self._link
        if not link.usable():
            return super().admit_in_panic(route, lease)
        if self._clock.monotonic() < self._cool_until:
            return _REJECTED
        decided = await self._aguarded("GUARDED_PANIC", lease)
        if decided is None:
            return super().admit_in_panic(route, lease)
        return self._panic_ticket(*decided, lease)

    def _panic_ticket(self, raw: list[object], token: str, lease: float) -> Ticket:
        ticket = self._ticket(raw, token, lease)
        if type(ticket) is Trial:
            with self._lock:
                self.panic_trials += 1
        return ticket

    def retry_in(self) -> float:
        """Seconds until the model may be called again (the fleet's open window or cooldown)."""
        left = self._blocked_until - self._clock.monotonic()
        return left if left > 0 else super().retry_in()

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted by the fleet (by this process while Redis is down)."""
        return self._failures if self._link.down_since is None else super().failure_count

    def snapshot(self) -> dict[str, object]:
        """The fleet's state, failures, policy and seconds until the next trial (a round trip;
        this process's view while Redis is unavailable)."""
        link = self._link
        if link.usable():
            try:
                answer = link.scripts["PEEK"](keys=self._keys, args=())
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
                self._adopt(tuple(int(x) for x in answer))  # type: ignore[arg-type]
        return super().snapshot()

    def record_success(self, admission: Ticket, call: Attempt | None = None) -> None:
        """Record that an admitted call succeeded: a trial closes the fleet's breaker
        (``call``, the attempt's record, is not read by the shared rule)."""
        shared = admission.shared if type(admission) is Trial else None
        if shared is not None:
            self._ask("SUCCESS", (0, shared))
        elif type(admission) is Trial or (admission is _ALLOWED and self._failures == 0):
            super().record_success(admission)  # this process's own trial, or nothing counted
        else:
            gen = self._admitted.get(self._gen)
            self._ask("SUCCESS", (gen, ""), lambda: ModelBreaker.record_success(self, admission))

    def record_failure(self, admission: Ticket, call: Attempt | None = None) -> None:
        """Record a failure that counts against the model, for the fleet."""
        self._fail(admission, None, call)

    def _fail(self, admission: Ticket, cooldown: float | None, call: Attempt | None = None) -> None:
        self._cool(cooldown)
        shared = admission.shared if type(admission) is Trial else None
        if shared is None and type(admission) is Trial:
            super().record_failure(admission)  # a trial this process granted alone
            return
        policy = self.policy
        gen = self._admitted.get(self._gen) if shared is None else 0
        args = (gen, shared or "", policy.failure_threshold, _ms(policy.recovery_timeout))
        cap = policy.max_recovery_timeout
        growth = (0 if cap is None else _ms(cap), int(policy.recovery_jitter * self._draw() * 1000))
        fallback = (
            None if shared else lambda: self._alone(ModelBreaker.record_failure, admission, call)
        )
        self._ask("FAILURE", (*args, _cooldown_ms(cooldown), *growth), fallback)

    def _cool(self, cooldown: float | None) -> None:
        if cooldown is not None:
            until = self._clock.monotonic() + cooldown
            if until > self._cool_until:
                self._cool_until = until
            if until > self._blocked_until:
                self._blocked_until = until

    def cooldown(self) -> float:
        """Seconds left of the fleet's Retry-After cooldown of this model (0: none, or the
        breaker is open: an open breaker is not waited for)."""
        if self.state is BreakerState.OPEN:
            return 0.0
        left = self._cool_until - self._clock.monotonic()
        return left if left > 0 else 0.0

    def record_neutral(self, admission: Ticket) -> None:
        """Record an outcome that says nothing about the model: a trial frees the fleet's slot."""
        self._neutral(admission, None)

    def _neutral(self, admission: Ticket, cooldown: float | None) -> None:
        self._cool(cooldown)
        shared = admission.shared if type(admission) is Trial else None
        if shared is None:
            super().record_neutral(admission)
            if cooldown is None:
                return
        self._ask("NEUTRAL", (0, shared or "", _cooldown_ms(cooldown)))

    def record(self, admission: Ticket, error: ProviderError, call: Attempt | None = None) -> None:
        """Record a failed call; a 429 or 503 with a retry hint makes the fleet cool down."""
        cooldown = cooldown_hint(error)
        if error.counts_against_breaker:
            self._fail(admission, cooldown, call)
        else:
            self._neutral(admission, cooldown)

    def reset(self) -> None:
        """Close the breaker and forget its failures, in this process and in Redis."""
        self._blocked_until = self._cool_until = 0.0
        link = self._link
        if link.usable():
            try:
                link.scripts["RESET"](keys=self._keys[:2])
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
        self._failures = 0
        super().reset()
