"""What a call refused at a deployment's client-side limit leads to: skip, wait, or fail.

`at_capacity` is the attempt loop's decision (`ModelAttempts.failed` hands it the
`CapacityExceeded` the gate raised). The refusal is not an attempt and never reaches the
breaker. The deployment is skipped for the next model of the route; when no later model could
serve now (and none known to be full has room sooner), the request waits for this one's
capacity within its deadline: a rate limit by sleeping on the clock until the window has room,
a bulkhead by leaving word for the gate to wait for a slot on the next call. Otherwise the
deployment is given up (``rate_limited_locally`` / ``bulkhead_full``), and a request whose
last model ended so raises `LocalRateLimitError` (see `Plan.error`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reliable_llm._breaker import BreakerState
from reliable_llm._errors import FailureReason, ModelFailure
from reliable_llm._gate import MAX_CONCURRENT_CALLS, SLOT_WAIT, CapacityExceeded, DeploymentState

if TYPE_CHECKING:
    from reliable_llm._attempts import ModelAttempts

__all__ = ["at_capacity", "sibling_left"]

logger = logging.getLogger("reliable_llm")

_MIN_WAIT = 0.001  # seconds: a wait that rounds to zero still yields
_OPEN = BreakerState.OPEN
_CLOSED = BreakerState.CLOSED


def sibling_left(entry: Any, entries: tuple[Any, ...], now: float) -> bool:
    """Whether a deployment after ``entry`` in the route, of the same group, is ready to take
    the request now: its breaker closed and no limit known to be reached."""
    group = entry.member_of
    for later in entries[entries.index(entry) + 1 :]:
        if later.member_of is not group:  # a group's deployments are adjacent in a route
            return False
        if later.breaker.state is _CLOSED:
            state = getattr(later.provider, "state", None)
            if not (isinstance(state, DeploymentState) and state.full_until > now):
                return True
    return False


def _could_serve(entry: Any, now: float) -> bool:
    """Whether a later model of the route might take the request now (a cheap guess)."""
    breaker = entry.breaker
    if breaker.state is _OPEN and breaker.retry_in() > 0:
        return False
    state = getattr(entry.provider, "state", None)
    return not (isinstance(state, DeploymentState) and state.full_until > now)


def _should_wait(later: tuple[Any, ...], now: float, ready_at: float) -> bool:
    """Whether to wait for this deployment: no later model of the route could serve now, and
    none of the later ones known to be full has room sooner (that one waits instead)."""
    for entry in later:
        if _could_serve(entry, now):
            return False
        state = getattr(entry.provider, "state", None)
        if isinstance(state, DeploymentState) and now < state.full_until < ready_at:
            return False
    return True


def at_capacity(tries: ModelAttempts, exc: CapacityExceeded) -> float | None:
    """Decide for a call its deployment refused: seconds to wait before trying it again, or
    None to give the deployment up (``tries.failure`` says why)."""
    tries.number -= 1  # nothing was sent: not an attempt
    tries.in_flight = False
    if tries.span is not None:  # a tracer opened a span for this call: close it
        tries._end_span(None, None, exc)
    plan = tries.plan
    entry = tries.entry
    now = tries.engine.clock.monotonic()
    wait = exc.retry_in
    state = getattr(entry.provider, "state", None)
    if isinstance(state, DeploymentState):
        state.full_until = max(state.full_until, now + wait)
        group = entry.member_of
        if group is not None:
            group.note_full(state.full_until)
    plan.note_capacity(exc.limit, now + wait, now)
    entries = plan.entries
    later = entries[entries.index(entry) + 1 :]
    if _should_wait(later, now, now + wait) and wait < plan.deadline - now:
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "deployment %r is at its %s limit; waiting for capacity", entry.name, exc.limit
            )
        if exc.limit == MAX_CONCURRENT_CALLS and isinstance(state, DeploymentState):
            # A slot frees when a call ends, not at a known time: the next call waits for
            # it at the bulkhead (woken when a slot is given back) within the deadline.
            SLOT_WAIT.set((plan.request, state, plan.deadline))
            return 0.0
        return max(wait, _MIN_WAIT)
    reason = (
        FailureReason.BULKHEAD_FULL
        if exc.limit == MAX_CONCURRENT_CALLS
        else FailureReason.RATE_LIMITED_LOCALLY
    )
    tries.failure = ModelFailure(entry.name, reason, tuple(tries.errors))
    return None
