"""What a call refused at a deployment's client-side limit leads to: skip, wait, or fail.

`at_capacity` is the attempt loop's decision (`ModelAttempts.failed` hands it the
`CapacityExceeded` the gate raised). The refusal is not an attempt and never reaches the
breaker. The deployment is skipped for the next model of the route; when no later model could
serve now (and none known to be full has room sooner), the request waits for this one's
capacity within its deadline: a rate limit by sleeping on the clock until the window has room,
a bulkhead by leaving word for the gate to wait for a slot on the next call. Otherwise the
deployment is given up (``rate_limited_locally`` / ``bulkhead_full``), and a request whose
last model ended so raises `LocalRateLimitError` (see `Plan.error`).

In a group of several deployments the request goes to whichever deployment of the GROUP has
room first (`_in_group`): one with room now, even one the request already passed (the group's
choice is re-run, `Plan.regroup`); when none has, it waits on the group's queue for a slot
given back on any of them (`reliable_llm._groupwait`), or sleeps until the soonest rate-limit
room of any. The wait is reported at INFO once per deployment per saturation episode.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from reliable_llm._breaker import BreakerState
from reliable_llm._errors import FailureReason, ModelFailure
from reliable_llm._gate import MAX_CONCURRENT_CALLS, SLOT_WAIT, CapacityExceeded, DeploymentState

if TYPE_CHECKING:
    from reliable_llm._attempts import ModelAttempts
    from reliable_llm._deployments import DeploymentGroup

__all__ = ["at_capacity", "sibling_left"]

logger = logging.getLogger("reliable_llm")

_MIN_WAIT = 0.001  # seconds: a wait that rounds to zero still yields
# Times one request may re-run its group's choice after finding room elsewhere (each time
# because a slot freed or a rate limit's window opened); past it, it waits where it is.
MAX_REGROUPS = 64
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
    None to give the deployment up (``tries.failure`` says why; the route then goes on, in a
    new order when `Plan.regroup` was called)."""
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
        if state.full_until <= now:  # not known to be full: a new episode, report its wait
            state.announce = True
        state.full_until = max(state.full_until, now + wait)
        if exc.limit != MAX_CONCURRENT_CALLS and wait < math.inf:  # inf: this call never fits
            state.ready_at = now + wait  # the limiter's latest word
        group = entry.member_of
        if group is not None:
            group.note_full(state.full_until)
            if (
                group.queue is not None
                and tries.engine.regroups
                and getattr(plan, "regroups", 0) < MAX_REGROUPS
            ):
                return _in_group(tries, exc, state, group, now)
    plan.note_capacity(exc.limit, now + wait, now)
    entries = plan.entries
    later = entries[entries.index(entry) + 1 :]
    if _should_wait(later, now, now + wait) and wait < plan.deadline - now:
        _log_wait(entry.name, exc.limit, state)
        if exc.limit == MAX_CONCURRENT_CALLS and isinstance(state, DeploymentState):
            # A slot frees when a call ends, not at a known time: the next call waits for
            # it at the bulkhead (woken when a slot is given back) within the deadline.
            SLOT_WAIT.set((plan.request, state, plan.deadline, None))
            return 0.0
        return max(wait, _MIN_WAIT)
    return _give_up(tries, exc)


def _give_up(tries: ModelAttempts, exc: CapacityExceeded) -> float | None:
    """Give the deployment up at its limit: None, with ``tries.failure`` saying why."""
    reason = (
        FailureReason.BULKHEAD_FULL
        if exc.limit == MAX_CONCURRENT_CALLS
        else FailureReason.RATE_LIMITED_LOCALLY
    )
    tries.failure = ModelFailure(tries.entry.name, reason, tuple(tries.errors))
    return None


def _log_wait(name: str, limit: str, state: object) -> None:
    """One INFO line when a deployment starts making requests wait; DEBUG for the rest of
    the episode (hundreds of requests may queue behind one full deployment): the episode
    ends once the deployment is refusing no more (`DeploymentState.full_until` passed)."""
    level = logging.DEBUG
    if not isinstance(state, DeploymentState) or state.announce:
        level = logging.INFO
        if isinstance(state, DeploymentState):
            state.announce = False
    if logger.isEnabledFor(level):
        logger.log(level, "deployment %r is at its %s limit; waiting for capacity", name, limit)


def _in_group(
    tries: ModelAttempts,
    exc: CapacityExceeded,
    state: DeploymentState,
    group: DeploymentGroup,
    now: float,
) -> float | None:
    """`at_capacity` for a deployment of a group of several: the request goes to whichever
    deployment of the group has room first.

    Another deployment with room now takes the request (ahead in the route: the route goes
    on; behind: the group's choice is re-run, `Plan.regroup`). When none has room and no
    model after the group could serve, the request waits on the group: for a slot given back
    on any deployment (`reliable_llm._groupwait`), or for the soonest rate limit of any.
    """
    plan = tries.plan
    entry = tries.entry
    entries = plan.entries
    at = entries.index(entry)
    end = at + 1  # a group's deployments are adjacent in a route
    while end < len(entries) and entries[end].member_of is group:
        end += 1
    members = group.members
    mine = members.index(entry)
    ready_at = now + exc.retry_in
    soonest = math.inf  # when the first other deployment has room (now: has room now)
    first = None
    for i in range(len(members)):
        if i != mine:
            when = group.ready_time(i, now)
            if when < soonest:
                soonest, first = when, members[i]
    plan.note_capacity(exc.limit, ready_at, now)
    if first is not None and (
        soonest <= now or (exc.limit != MAX_CONCURRENT_CALLS and soonest < ready_at)
    ):
        # Another deployment has room now (or, against a rate limit, sooner): go there.
        if first not in entries[at + 1 : end]:  # not ahead in the route: re-run the choice
            plan.regroup(group.regroup(now) + entries[end:])
        return _give_up(tries, exc)
    if not _should_wait(entries[end:], now, min(ready_at, soonest)):
        return _give_up(tries, exc)  # a model after the group can serve
    # A slot may free at any moment: wait while the deadline has not passed. A rate limit's
    # room comes at a known time: wait only if it comes before the deadline.
    if (now if exc.limit == MAX_CONCURRENT_CALLS else ready_at) >= plan.deadline:
        return _give_up(tries, exc)  # no time left to wait
    if exc.limit == MAX_CONCURRENT_CALLS:
        if end - 1 != at:  # wait at the group's last deployment: none is left to try after
            return _give_up(tries, exc)  # the wait (it ends with the deadline, or with room)
        _log_wait(entry.name, exc.limit, state)
        SLOT_WAIT.set((plan.request, state, plan.deadline, group.queue))
        return 0.0
    _log_wait(entry.name, exc.limit, state)
    return max(exc.retry_in, _MIN_WAIT)
