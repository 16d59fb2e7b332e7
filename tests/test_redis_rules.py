"""The opt-in breaker rules shared by the fleet through RedisState, on a real redis-server.

Failure rate and slow calls over one sliding window fed by every process, the generation
rule for late outcomes, one trial per window under a race, panic mode on the mirrored
states, and the local rules deciding alone while Redis is down. Two RedisState instances on
one namespace stand for two processes. Open windows end by moving the fake clock and
Redis's stored deadline; a time-based window's buckets are aged in Redis; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, debug_sleep

from reliable_llm import (
    AllModelsFailedError,
    Attempt,
    BreakerPolicy,
    BreakerState,
    LLMManager,
    RateLimitError,
    ServerError,
)
from reliable_llm._breaker import Admission, ModelBreaker, Trial
from reliable_llm._windows import BUCKETS, CountWindow, TimeWindow
from reliable_llm.backends import RedisState
from reliable_llm.events import SharedStateDegraded
from reliable_llm.testing import FakeClock

RATE = BreakerPolicy(failure_rate_threshold=50.0, minimum_number_of_calls=6, sliding_window_size=10)


class Flaky:
    """A model that fails with ServerError while ``failing`` is set, counting its calls; each
    call takes ``seconds`` on ``clock`` when given."""

    def __init__(self, failing: bool = True, clock: FakeClock | None = None) -> None:
        self.failing = failing
        self.calls = 0
        self.clock = clock
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __call__(self, prompt: str, **kwargs: Any) -> str:
        with self._lock:
            self.calls += 1
        if self.clock is not None and self.seconds:
            self.clock.advance(self.seconds)
        if self.failing:
            raise ServerError("down")
        return "primary"


def manager(
    url: str, namespace: str, primary: Any, policy: BreakerPolicy, clock: FakeClock | None = None
) -> LLMManager:
    """A process of the fleet: ``primary`` under ``policy``, then a healthy backup."""
    llm = LLMManager(
        max_retries=0,
        clock=clock or FakeClock(),
        random=lambda: 0.0,
        enable_caching=False,
        shared_state=RedisState(url, namespace=namespace, timeout=0.5),
    )
    llm.register_model("primary", primary, breaker=policy)
    llm.register_model("backup", lambda prompt, **kw: "backup")
    llm.set_fallback_chain(["backup"])
    return llm


def breaker(url: str, namespace: str, policy: BreakerPolicy, clock: FakeClock) -> ModelBreaker:
    """Model m's breaker in a process of its own."""
    return RedisState(url, namespace=namespace, timeout=0.5).breaker("m", policy, clock, None)


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def end_window(url: str, namespace: str, model: str, clock: FakeClock) -> None:
    """End the open window: in Redis (its stored deadline) and on the processes' clock."""
    raw(url).hset(f"{namespace}:breaker:{model}", "u", 0)
    clock.advance(61.0)


def state(llm: LLMManager, model: str = "primary") -> str:
    return str(llm.get_model_info(model)["breaker"]["state"])


# -- failure rate --------------------------------------------------------------------------


def test_two_processes_together_open_the_rate_breaker_at_the_minimum_calls(
    redis_url: str, namespace: str
) -> None:
    """3 + 2 failures (5 calls < minimum 6) keep it closed; the 6th, 100% failed, opens it
    for both processes, which then fall back without calling the primary."""
    primary = Flaky()
    one = manager(redis_url, namespace, primary, RATE)
    two = manager(redis_url, namespace, primary, RATE)
    for llm, calls in ((one, 3), (two, 2)):
        for _ in range(calls):
            assert llm.generate("q") == "backup"
    assert primary.calls == 5 and state(one) == state(two) == "closed"
    assert one.get_model_info("primary")["breaker"]["window_calls"] == 5  # both processes'
    assert two.generate("q") == "backup"
    assert primary.calls == 6
    for llm in (one, two):
        assert llm.generate("q") == "backup"
    assert primary.calls == 6 and state(one) == state(two) == "open"


def test_a_fleet_below_the_failure_rate_stays_closed(redis_url: str, namespace: str) -> None:
    """4 failures in 10 calls across two processes (40% < 50%): the breaker stays closed."""
    primary = Flaky(failing=False)
    one = manager(redis_url, namespace, primary, RATE)
    two = manager(redis_url, namespace, primary, RATE)
    for i in range(10):
        primary.failing = i % 5 in (1, 3)
        (one if i % 2 else two).generate("q")
    info = two.get_model_info("primary")["breaker"]
    assert (info["state"], info["window_calls"], info["failure_rate"]) == ("closed", 10, 40.0)
    assert primary.calls == 10


def test_the_count_window_forgets_the_oldest_calls_fleet_wide(
    redis_url: str, namespace: str
) -> None:
    """Window of 10: 6 successes then 4 failures (40%) stay closed; 10 more successes push
    the failures out (0%); then 5 failures in the last 10 calls (50%) open it."""
    clock = FakeClock()
    one, two = (breaker(redis_url, namespace, RATE, clock) for _ in range(2))

    def calls(pattern: str) -> None:
        for i, mark in enumerate(pattern):
            b = one if i % 2 else two
            if mark == "F":
                b.record_failure(b.admit())
            else:
                b.record_success(b.admit())

    calls("SSSSSSFFFF")
    assert one.rates() == (10, 40.0, 0.0) and one.state is BreakerState.CLOSED
    calls("S" * 10)
    assert one.rates() == (10, 0.0, 0.0)
    calls("FFFF")
    assert two.snapshot()["failure_rate"] == 40.0 and two.state is BreakerState.CLOSED
    calls("F")
    assert two.state is BreakerState.OPEN
    assert one.admit() is Admission.REJECTED


def test_the_time_window_forgets_calls_older_than_its_span(redis_url: str, namespace: str) -> None:
    """time_based, 10 s: 5 failures aged one span in Redis no longer count; 6 fresh ones do."""
    policy = BreakerPolicy(
        failure_rate_threshold=50.0,
        minimum_number_of_calls=6,
        sliding_window_type="time_based",
        sliding_window_size=10,
    )
    clock = FakeClock()
    one, two = (breaker(redis_url, namespace, policy, clock) for _ in range(2))
    for i in range(5):
        b = one if i % 2 else two
        b.record_failure(b.admit())
    # One span passes: the newest bucket's index, in Redis, is made 20 buckets older.
    raw(redis_url).hincrby(f"{namespace}:window:m", "h", -20)
    one.record_failure(one.admit())
    assert one.state is BreakerState.CLOSED and one.rates()[0] == 1
    for _ in range(5):
        two.record_failure(two.admit())
    assert two.state is BreakerState.OPEN and one.admit() is Admission.REJECTED


def test_without_a_rate_the_slow_rule_keeps_the_consecutive_rule(
    redis_url: str, namespace: str
) -> None:
    """Only slow calls set: failure_threshold consecutive failures still open the fleet's
    breaker, as in one process."""
    policy = BreakerPolicy(failure_threshold=3, slow_call_duration_threshold=1.0)
    clock = FakeClock()
    one, two = (breaker(redis_url, namespace, policy, clock) for _ in range(2))
    one.record_failure(one.admit())
    two.record_failure(two.admit())
    assert one.state is BreakerState.CLOSED
    one.record_failure(one.admit())
    assert one.state is BreakerState.OPEN and two.admit() is Admission.REJECTED


# -- the shared window matches the in-process one --------------------------------------------

_STEPS = st.lists(
    st.tuples(st.integers(0, 25), st.integers(0, 1), st.integers(0, 1)),  # buckets, failed, slow
    max_size=60,
)
_SPAN = 100_000  # seconds (the largest window): 5000 s buckets, so Redis's own time stays in one


def _outcome_script(
    url: str, namespace: str, kind: str, size: int
) -> Callable[[int, int], list[int]]:
    """WINDOW_OUTCOME of model m with rules that never open: (failed, slow) -> the window."""
    link = RedisState(url, namespace=namespace, timeout=0.5)._link
    keys = [f"{namespace}:{k}:m" for k in ("breaker", "trial", "cooldown", "window")]

    def add(failed: int, slow: int) -> list[int]:
        args = (0, failed, slow, 0, 10**9, 1000, 0, 0, "", "", 1, kind, size)
        return [int(x) for x in link.scripts["WINDOW_OUTCOME"](keys=keys, args=args)[5:]]

    return add


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(min_value=1, max_value=30), _STEPS)
def test_the_fleet_count_window_counts_as_the_local_one(
    redis_url: str, size: int, steps: list[tuple[int, int, int]]
) -> None:
    """Any sequence of outcomes: Redis's count window holds what CountWindow holds."""
    add = _outcome_script(redis_url, f"test-{uuid.uuid4().hex[:12]}", "c", size)
    local = CountWindow(size, 2)
    for _, failed, slow in steps:
        local.add(0.0, (failed, slow))
        calls, totals = local.read(0.0)
        assert add(failed, slow) == [calls, *totals]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_STEPS)
def test_the_fleet_time_window_counts_as_the_local_one(
    redis_url: str, steps: list[tuple[int, int, int]]
) -> None:
    """Any sequence of outcomes k buckets apart: Redis's time window holds what TimeWindow
    holds. Time passing is simulated in Redis by making every bucket k buckets older."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    add = _outcome_script(redis_url, namespace, "t", _SPAN * 1000)
    client = raw(redis_url)
    key = f"{namespace}:window:m"
    local = TimeWindow(float(_SPAN), 2)
    width = _SPAN / BUCKETS
    now = 0.5 * width
    for buckets, failed, slow in steps:
        now += buckets * width
        fields = {k.decode(): v for k, v in client.hgetall(key).items()}
        if "h" in fields and buckets:
            shifted = {"h": int(fields["h"]) - buckets}
            for name in ("c", "f", "s"):
                for slot in range(BUCKETS):
                    value = fields.get(f"{name}{slot}")
                    if value is not None:
                        shifted[f"{name}{(slot - buckets) % BUCKETS}"] = int(value)
            client.hdel(key, *[f"{n}{i}" for n in "cfs" for i in range(BUCKETS)])
            client.hset(key, mapping=shifted)
        local.add(now, (failed, slow))
        calls, totals = local.read(now)
        assert add(failed, slow) == [calls, *totals]


# -- slow calls ------------------------------------------------------------------------------


def test_slow_successes_in_two_processes_open_the_breaker(redis_url: str, namespace: str) -> None:
    """Answers taking 2 s (threshold 1 s) on the managers' clock, 3 per process: at the
    minimum of 6 calls, 100% slow opens the fleet's breaker though every call succeeded."""
    policy = BreakerPolicy(
        slow_call_duration_threshold=1.0,
        slow_call_rate_threshold=50.0,
        minimum_number_of_calls=6,
        sliding_window_size=10,
    )
    clock = FakeClock()
    primary = Flaky(failing=False, clock=clock)
    primary.seconds = 2.0
    one = manager(redis_url, namespace, primary, policy, clock)
    two = manager(redis_url, namespace, primary, policy, clock)
    answers = [llm.generate("q") for llm in (one, two) * 3]
    assert answers == ["primary"] * 6
    assert state(one) == state(two) == "open"
    assert one.generate("q") == two.generate("q") == "backup"
    assert primary.calls == 6


def test_fast_successes_are_not_slow(redis_url: str, namespace: str) -> None:
    """Answers taking 0.5 s under a 1 s threshold: 10 calls, slow-call rate 0, closed."""
    policy = BreakerPolicy(slow_call_duration_threshold=1.0, minimum_number_of_calls=6)
    clock = FakeClock()
    primary = Flaky(failing=False, clock=clock)
    primary.seconds = 0.5
    one = manager(redis_url, namespace, primary, policy, clock)
    two = manager(redis_url, namespace, primary, policy, clock)
    for _ in range(5):
        assert one.generate("q") == two.generate("q") == "primary"
    info = one.get_model_info("primary")["breaker"]
    assert (info["state"], info["window_calls"], info["slow_call_rate"]) == ("closed", 10, 0.0)


def test_a_slow_trial_reopens_the_fleet_breaker(redis_url: str, namespace: str) -> None:
    """A half-open trial that succeeds slowly re-opens the breaker for every process."""
    policy = BreakerPolicy(slow_call_duration_threshold=1.0, minimum_number_of_calls=2)
    clock = FakeClock()
    one, two = (breaker(redis_url, namespace, policy, clock) for _ in range(2))
    for b in (one, two):
        b.record_success(b.admit(), Attempt("m", 1, 3.0))
    assert two.state is BreakerState.OPEN
    end_window(redis_url, namespace, "m", clock)
    trial = two.admit(5.0)
    assert isinstance(trial, Trial)
    two.record_success(trial, Attempt("m", 1, 3.0))
    assert two.state is BreakerState.OPEN and one.admit() is Admission.REJECTED
    assert raw(redis_url).hget(f"{namespace}:breaker:m", "s") == b"1"


# -- generations and races -------------------------------------------------------------------


def test_a_late_outcome_from_an_old_generation_is_ignored(redis_url: str, namespace: str) -> None:
    """A failure admitted before the fleet's breaker opened and closed again is not counted
    in the new window (each state counts afresh)."""
    clock = FakeClock()
    late_one, other = (breaker(redis_url, namespace, RATE, clock) for _ in range(2))
    late = late_one.admit()  # its call hangs while the fleet goes closed -> open -> closed
    for _ in range(6):
        other.record_failure(other.admit())
    assert other.state is BreakerState.OPEN
    end_window(redis_url, namespace, "m", clock)
    trial = other.admit(5.0)
    other.record_success(trial)
    assert other.state is BreakerState.CLOSED
    late_one.record_failure(late)
    snapshot = other.snapshot()
    assert (snapshot["state"], snapshot["window_calls"], snapshot["failure_count"]) == (
        "closed",
        0,
        0,
    )


def test_racing_processes_open_once_and_send_one_trial_per_window(
    redis_url: str, namespace: str
) -> None:
    """8 threads, each its own RedisState, hammer a dead model through closed -> open ->
    half-open -> closed three times: exactly one trial per window, and no more calls before
    opening than the minimum plus those already in flight."""
    clock = FakeClock()
    threads = 8
    breakers = [breaker(redis_url, namespace, RATE, clock) for _ in range(threads)]
    barrier = threading.Barrier(threads)
    for _ in range(3):
        allowed: list[int] = []
        trials: list[Trial] = []
        lock = threading.Lock()

        def hammer(b: ModelBreaker, allowed: list[int] = allowed, lock: Any = lock) -> None:
            barrier.wait()
            while True:
                ticket = b.admit(5.0)
                if ticket is not Admission.ALLOWED:
                    return
                with lock:
                    allowed.append(1)
                b.record_failure(ticket)

        def try_trial(b: ModelBreaker, trials: list[Trial] = trials, lock: Any = lock) -> None:
            barrier.wait()
            ticket = b.admit(5.0)
            if isinstance(ticket, Trial):
                with lock:
                    trials.append(ticket)
                b.record_success(ticket)

        for work in (hammer, try_trial):
            running = [threading.Thread(target=work, args=(b,)) for b in breakers]
            for thread in running:
                thread.start()
            for thread in running:
                thread.join(10)
            if work is hammer:
                assert RATE.minimum_number_of_calls <= len(allowed) < 6 + threads
                assert all(b.admit() is Admission.REJECTED for b in breakers)
                end_window(redis_url, namespace, "m", clock)
        assert len(trials) == 1
        assert raw(redis_url).hget(f"{namespace}:breaker:m", "s") == b"0"


def test_four_processes_race_the_rate_breaker_with_one_trial_per_window(
    redis_url: str, namespace: str
) -> None:
    """Four OS processes hammer one model (dead for 0.6 s, then healthy; open time 0.1 s)
    through closed -> open -> half-open -> closed: never two trials in one window, at most
    the minimum of calls plus those in flight reach the dead model, and all end closed."""
    import multiprocessing

    import redis_rule_workers

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    start = context.Value("d", 0.0)
    out = context.Queue()
    processes = [
        context.Process(
            target=redis_rule_workers.hammer,
            args=(redis_url, namespace, barrier, start, 1.0, 0.6, out),
            daemon=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    try:
        results = [out.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
    trials = [generation for r in results for generation in r["trials"]]
    assert len(trials) >= 2  # several open windows went by
    assert len(trials) == len(set(trials))  # never two trials in one window
    minimum = redis_rule_workers.POLICY.minimum_number_of_calls
    assert minimum <= sum(r["dead_calls"] for r in results) <= minimum + 3
    assert all(r["closed"] for r in results)
    assert raw(redis_url).hget(f"{namespace}:breaker:m", "s") == b"0"


# -- panic -------------------------------------------------------------------------------------

PANIC = BreakerPolicy(failure_threshold=1, recovery_timeout=600.0, panic_threshold=50.0)


def route_manager(url: str, namespace: str, models: dict[str, Flaky]) -> LLMManager:
    llm = LLMManager(
        max_retries=0,
        clock=FakeClock(),
        random=lambda: 0.0,
        enable_caching=False,
        shared_state=RedisState(url, namespace=namespace, timeout=0.5),
    )
    for name, model in models.items():
        llm.register_model(name, model, breaker=PANIC)
    llm.set_fallback_chain(["b", "c"])
    return llm


def test_panic_lets_a_trial_through_on_the_fleets_mirrored_states(
    redis_url: str, namespace: str
) -> None:
    """One process opens a, b and c; the other, learning each state as it walks the route,
    panics at b (2 of 3 open: 33% closed < 50%) and is served by b's trial, closing b."""
    models = {name: Flaky() for name in "abc"}
    one = route_manager(redis_url, namespace, models)
    two = route_manager(redis_url, namespace, models)
    with pytest.raises(AllModelsFailedError):
        one.generate("q")  # one failure each opens all three, for the fleet
    for model in models.values():
        model.failing = False
    assert two.generate("q") == "primary"
    assert [m.calls for m in models.values()] == [1, 2, 1]  # a respected, b's one trial
    assert state(two, "b") == "closed" and two.get_model_info("b")["breaker"]["panic_trials"] == 1
    assert raw(redis_url).hget(f"{namespace}:breaker:b", "s") == b"0"


def test_panic_trials_are_one_at_a_time_across_the_fleet(redis_url: str, namespace: str) -> None:
    """Route all open: while one process holds a's panic trial, the other's panic is refused
    for a (at most one panic trial of a model in flight in the fleet); after that trial
    fails, the next panic may try again."""
    clock = FakeClock()
    policies = [
        [
            RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(n, PANIC, clock, None)
            for n in "abc"
        ]
        for _ in range(2)
    ]

    routes = [[Member(b) for b in bs] for bs in policies]
    for b in policies[0]:
        b.record_failure(b.admit())
    for b in policies[1]:
        assert b.admit() is Admission.REJECTED  # mirrors the fleet's open state
    trial = policies[0][0].admit_in_panic(routes[0])
    assert isinstance(trial, Trial)
    assert policies[1][0].admit_in_panic(routes[1]) is Admission.REJECTED
    policies[0][0].record_failure(trial)
    assert raw(redis_url).hget(f"{namespace}:breaker:a", "s") == b"1"
    assert isinstance(policies[1][0].admit_in_panic(routes[1]), Trial)


class Member:
    """A route member as panic mode reads it."""

    def __init__(self, breaker: ModelBreaker) -> None:
        self.breaker = breaker


def test_panic_respects_a_retry_after_cooldown(redis_url: str, namespace: str) -> None:
    """b and c open, a cooling down after another process's 429 with Retry-After: a panic
    request does not call a (Redis answers the cooldown), and learns how long it lasts."""
    clock = FakeClock()
    a, b, c = (
        RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(n, PANIC, clock, None)
        for n in "abc"
    )
    for opened in (b, c):
        opened.record_failure(opened.admit())
    a.record(a.admit(), RateLimitError("slow down", status_code=429, retry_after=30.0))
    fresh = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker("a", PANIC, clock, None)
    assert fresh.admit_in_panic([Member(fresh), Member(b), Member(c)]) is Admission.REJECTED
    assert 29.0 < fresh.retry_in() <= 30.0 and fresh.panic_trials == 0


async def test_async_panic_asks_redis_without_blocking_the_loop(
    redis_url: str, namespace: str
) -> None:
    """agenerate in panic mode takes the fleet's trial through the asyncio client."""
    models = {name: Flaky() for name in "abc"}
    one = route_manager(redis_url, namespace, models)
    two = route_manager(redis_url, namespace, models)
    with pytest.raises(AllModelsFailedError):  # another process: outcomes recorded at once
        await asyncio.to_thread(one.generate, "q")
    for model in models.values():
        model.failing = False

    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis call ran on the event loop")

    link = two.shared_state._link  # type: ignore[union-attr]
    link.scripts["PANIC"] = link.scripts["ADMIT"] = blocking
    link.scripts["pipeline.GUARDED_PANIC"] = link.scripts["pipeline.GUARDED_ADMIT"] = blocking
    try:
        assert await two.agenerate("q") == "primary"
        assert models["b"].calls == 2
    finally:
        await two.aclose()


async def test_a_panic_trial_cancelled_on_the_wire_is_freed(redis_url: str, namespace: str) -> None:
    """A task cancelled while its panic admission waits on a slow Redis frees the panic trial
    it was granted there: another process takes it at once, not after the lease expires."""
    clock = FakeClock()
    a, b, c = (
        RedisState(redis_url, namespace=namespace, timeout=2.0).breaker(n, PANIC, clock, None)
        for n in "abc"
    )

    def open_all() -> None:  # off the loop: outcomes recorded there would travel as tasks
        for opened in (a, b, c):
            opened.record_failure(opened.admit())

    await asyncio.to_thread(open_all)
    route = [Member(a), Member(b), Member(c)]
    assert a.panics(route)
    await a._link.aclient().ping()  # type: ignore[attr-defined]  # connected before the sleep
    sleeper = debug_sleep(redis_url, 0.3)
    task = asyncio.create_task(a.aadmit_in_panic(route, 60.0))
    await asyncio.sleep(0.05)  # its round trip is on the wire
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(sleeper.join, 5)
    await _settled_link(a)
    assert raw(redis_url).exists(f"{namespace}:trial:a") == 0
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "a", PANIC, FakeClock(), None
    )
    assert isinstance(other.admit_in_panic([Member(other), Member(b), Member(c)], 60.0), Trial)
    for breaker in (a, b, c, other):
        await breaker._link.aclose()  # type: ignore[attr-defined]
        breaker._link.close()  # type: ignore[attr-defined]


async def _settled_link(breaker: ModelBreaker) -> None:
    """Wait (up to 2 s) until the tasks ``breaker``'s link sent on this loop are done."""
    link = breaker._link  # type: ignore[attr-defined]
    for _ in range(2000):
        if not link._tasks:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("tasks still on their way to Redis after 2 s")


async def test_async_outcomes_feed_the_fleet_window_without_blocking_the_loop(
    redis_url: str, namespace: str
) -> None:
    """Under agenerate the outcomes go to the fleet's window through the asyncio client;
    two processes' 6 failures open the rate breaker for both."""
    primary = Flaky()
    one = manager(redis_url, namespace, primary, RATE)
    two = manager(redis_url, namespace, primary, RATE)

    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis call ran on the event loop")

    for llm in (one, two):
        link = llm.shared_state._link  # type: ignore[union-attr]
        link.scripts["WINDOW_OUTCOME"] = link.scripts["ADMIT"] = blocking
    try:
        for llm in (one, two) * 3:
            assert await llm.agenerate("q") == "backup"
            await _settled(llm)  # the outcome travels to Redis in a task of this loop
        assert primary.calls == 6
        assert await one.agenerate("q") == await two.agenerate("q") == "backup"
        assert primary.calls == 6
        assert raw(redis_url).hget(f"{namespace}:breaker:primary", "s") == b"1"
    finally:
        await one.aclose()
        await two.aclose()


async def _settled(llm: LLMManager) -> None:
    """Wait (up to 1 s) until the outcomes recorded on this loop have reached Redis."""
    link = llm.shared_state._link  # type: ignore[union-attr]
    for _ in range(1000):
        if not link._tasks:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("outcomes still on their way to Redis after 1 s")


# -- degradation -------------------------------------------------------------------------------


def test_with_redis_down_the_local_rate_rule_decides_alone(tmp_path: Any) -> None:
    """Redis unreachable: the process's own window opens the breaker after the minimum of
    calls, every request is answered, and the degradation is reported once."""
    server = RedisServer(tmp_path)  # a free port nobody serves
    events: list[Any] = []
    primary = Flaky()
    llm = LLMManager(
        max_retries=0,
        clock=FakeClock(),
        enable_caching=False,
        hooks=[events.append],
        shared_state=RedisState(server.url, namespace="ns", timeout=0.05),
    )
    llm.register_model("primary", primary, breaker=RATE)
    llm.register_model("backup", lambda prompt, **kw: "backup")
    llm.set_fallback_chain(["backup"])
    for _ in range(10):
        assert llm.generate("q") == "backup"
    assert primary.calls == 6 and state(llm) == "open"
    assert sum(isinstance(e, SharedStateDegraded) for e in events) == 1
