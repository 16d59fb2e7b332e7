"""What each process of the failure-rate race in test_redis_rules.py runs (spawned children)."""

from __future__ import annotations

import time
from typing import Any

from reliable_llm import BreakerPolicy
from reliable_llm._breaker import Admission, BreakerState, Trial
from reliable_llm._clock import SystemClock
from reliable_llm.backends import RedisState

POLICY = BreakerPolicy(
    failure_rate_threshold=50.0,
    minimum_number_of_calls=4,
    sliding_window_size=10,
    recovery_timeout=0.1,
)


def hammer(
    redis_url: str,
    namespace: str,
    barrier: Any,
    start: Any,
    seconds: float,
    dead_for: float,
    out: Any,
) -> None:
    """Drive model m's shared rate breaker as fast as possible for ``seconds``; the model is
    dead for the first ``dead_for`` (wall clock, from the moment all processes are ready: the
    same instant for all). Puts the generations of the trials this process took, its admitted
    calls to the dead model, and whether the breaker ended closed on ``out``."""
    breaker = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "m", POLICY, SystemClock(), None
    )
    barrier.wait(30)
    with start.get_lock():  # the first process through sets the one start of all
        if not start.value:
            start.value = time.time()
        started = float(start.value)
    trials: list[int] = []
    dead_calls = 0
    while time.time() < started + seconds:
        ticket = breaker.admit(0.5)
        if ticket is Admission.REJECTED:
            time.sleep(0.001)
            continue
        if isinstance(ticket, Trial):
            assert ticket.shared is not None
            trials.append(int(ticket.shared.rsplit("@", 1)[1]))
        dead = time.time() < started + dead_for  # read once admitted: when the call is made
        time.sleep(0.002)  # the call
        if dead:
            dead_calls += ticket is Admission.ALLOWED
            breaker.record_failure(ticket)
        else:
            breaker.record_success(ticket)
    ticket = breaker.admit(0.5)
    closed = ticket is Admission.ALLOWED and breaker.state is BreakerState.CLOSED
    out.put({"trials": trials, "dead_calls": dead_calls, "closed": closed})
