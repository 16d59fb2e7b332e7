"""The opt-in breaker rules on a fake clock: failure rate, slow calls, growing open time, panic."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from drivers import Ask

from reliable_llm import (
    AllModelsFailedError,
    Attempt,
    BreakerPolicy,
    BreakerState,
    FailureReason,
    InvalidRequestError,
    LLMManager,
    ServerError,
)
from reliable_llm._breaker import Admission, ModelBreaker, Trial
from reliable_llm.testing import FakeClock, Reply, ScriptedModel

README = Path(__file__).parent.parent / "README.md"


def _rate(clock: FakeClock, **overrides: object) -> ModelBreaker:
    settings: dict[str, object] = {
        "failure_rate_threshold": 50,
        "minimum_number_of_calls": 10,
        "sliding_window_size": 20,
    }
    settings.update(overrides)
    return ModelBreaker("m", BreakerPolicy(**settings), clock)  # type: ignore[arg-type]


def _took(seconds: float) -> Attempt:
    """The record of a call that took ``seconds``."""
    return Attempt("m", 1, seconds)


def _outcomes(breaker: ModelBreaker, pattern: str) -> None:
    """Record one closed-state call per character: F failed, S succeeded."""
    for mark in pattern:
        if mark == "F":
            breaker.record_failure(Admission.ALLOWED)
        else:
            breaker.record_success(Admission.ALLOWED)


# -- failure rate -------------------------------------------------------------------------


def test_failure_rate_waits_for_the_minimum_number_of_calls(clock: FakeClock) -> None:
    """Nine failures of nine calls leave it closed; the tenth call (10 of 10 failed) opens it."""
    breaker = _rate(clock)
    _outcomes(breaker, "F" * 9)
    assert breaker.state is BreakerState.CLOSED
    _outcomes(breaker, "F")
    assert breaker.state is BreakerState.OPEN


def test_failure_rate_below_the_threshold_never_opens(clock: FakeClock) -> None:
    """Runs of 6 consecutive failures at a 30% rate keep a failure-rate breaker closed."""
    breaker = _rate(clock)
    _outcomes(breaker, ("S" * 14 + "FFFFFF") * 10)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["failure_rate"] == 30.0
    assert breaker.failure_count == 6  # still counted and shown, but not the rule


def test_failure_rate_at_the_threshold_opens(clock: FakeClock) -> None:
    """9 failures of 19 calls stay closed; 10 of 20 is 50% and opens it (resilience4j's >=)."""
    breaker = _rate(clock)
    _outcomes(breaker, "S" * 10 + "F" * 9)
    assert breaker.state is BreakerState.CLOSED
    _outcomes(breaker, "F")
    assert breaker.snapshot()["state"] == "open"


def test_count_based_window_forgets_the_oldest_calls(clock: FakeClock) -> None:
    """Nine early failures slide out of a 20-call window and never add up with new ones."""
    breaker = _rate(clock)
    _outcomes(breaker, "S" * 11 + "F" * 9 + "S" * 20 + "F" * 9)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["window_calls"] == 20
    assert breaker.snapshot()["failure_rate"] == 45.0


def test_time_based_window_forgets_calls_older_than_its_span(clock: FakeClock) -> None:
    """Failures 11 s ago are out of a 10 s window: new failures start the count afresh."""
    breaker = _rate(
        clock, sliding_window_type="time_based", sliding_window_size=10, minimum_number_of_calls=5
    )
    _outcomes(breaker, "FFFF")
    clock.advance(11)
    _outcomes(breaker, "FFSS")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["window_calls"] == 4
    _outcomes(breaker, "F")  # 3 of 5 within the last 10 s
    assert breaker.state is BreakerState.OPEN


def test_reopened_breaker_counts_afresh_after_closing(clock: FakeClock) -> None:
    """A successful trial closes the breaker with an empty window: old failures are forgotten."""
    breaker = _rate(clock, recovery_timeout=5)
    _outcomes(breaker, "F" * 10)
    clock.advance(5)
    breaker.record_success(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
    _outcomes(breaker, "F" * 9)
    assert breaker.state is BreakerState.CLOSED


def test_reset_forgets_the_window_and_the_ejections(clock: FakeClock) -> None:
    """reset_circuit_breaker on a closed breaker empties its window: 9 old failures are gone."""
    breaker = _rate(clock, recovery_timeout=5)
    _outcomes(breaker, "F" * 10)
    breaker.reset()
    assert (breaker.state, breaker.ejections) == (BreakerState.CLOSED, 0)
    _outcomes(breaker, "F" * 9)
    breaker.reset()
    _outcomes(breaker, "F" * 9)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["window_calls"] == 9


def test_outcomes_of_calls_admitted_before_opening_are_ignored(clock: FakeClock) -> None:
    """Late failures of calls admitted while closed do not fill the next window."""
    breaker = _rate(clock)
    tickets = [breaker.admit() for _ in range(15)]
    for ticket in tickets[:10]:
        breaker.record_failure(ticket)
    assert breaker.state is BreakerState.OPEN
    for ticket in tickets[10:]:
        breaker.record_failure(ticket)
    assert breaker.snapshot()["window_calls"] == 0


def test_neutral_errors_do_not_count_in_the_window(clock: FakeClock) -> None:
    """Bad requests are the caller's problem: ten of them leave the window empty."""
    breaker = _rate(clock)
    for _ in range(10):
        breaker.record(breaker.admit(), InvalidRequestError("bad"))
    assert (breaker.state, breaker.snapshot()["window_calls"]) == (BreakerState.CLOSED, 0)


def test_window_counts_every_outcome_from_many_threads(clock: FakeClock) -> None:
    """8 threads x 500 outcomes into a time window: every one counted, none lost."""
    policy = BreakerPolicy(
        failure_threshold=10**6,
        slow_call_duration_threshold=100,  # a window, and a rule that never fires
        sliding_window_type="time_based",
        sliding_window_size=60,
    )
    breaker = ModelBreaker("m", policy, clock)

    def work(index: int) -> None:
        for n in range(500):
            if (n + index) % 4 == 0:
                breaker.record_failure(Admission.ALLOWED)
            else:
                breaker.record_success(Admission.ALLOWED)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = breaker.snapshot()
    assert (snapshot["state"], snapshot["window_calls"], snapshot["failure_rate"]) == (
        "closed",
        4000,
        25.0,
    )


# -- slow calls -----------------------------------------------------------------------------


def test_slow_calls_open_the_breaker(clock: FakeClock) -> None:
    """Successful calls slower than the threshold open it once their share reaches the rate."""
    breaker = ModelBreaker(
        "m",
        BreakerPolicy(
            slow_call_duration_threshold=2.0,
            slow_call_rate_threshold=50,
            minimum_number_of_calls=4,
            sliding_window_size=10,
        ),
        clock,
    )
    for duration in (0.5, 3.0, 0.5):
        breaker.record_success(breaker.admit(), _took(duration))
    assert breaker.snapshot()["slow_call_rate"] == pytest.approx(33.33)
    breaker.record_success(breaker.admit(), _took(2.0))  # exactly the threshold is not slow
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success(breaker.admit(), _took(2.5))  # 2 of 5 slow: 40%
    breaker.record_success(breaker.admit(), _took(9.0))  # 3 of 6: 50%
    assert breaker.state is BreakerState.OPEN


def test_slow_rule_keeps_the_consecutive_rule_when_no_rate_is_set(clock: FakeClock) -> None:
    """With only a slow-call rule, five consecutive failures still open the breaker."""
    breaker = ModelBreaker("m", BreakerPolicy(slow_call_duration_threshold=1.0), clock)
    _outcomes(breaker, "FFFFSFFFF")
    assert breaker.state is BreakerState.CLOSED
    _outcomes(breaker, "F")
    assert breaker.state is BreakerState.OPEN


def test_slow_trial_reopens(clock: FakeClock) -> None:
    """A half-open trial that succeeds slowly re-opens the breaker instead of closing it."""
    breaker = ModelBreaker(
        "m",
        BreakerPolicy(failure_threshold=1, recovery_timeout=10, slow_call_duration_threshold=1.0),
        clock,
    )
    breaker.record_failure(breaker.admit())
    clock.advance(10)
    breaker.record_success(breaker.admit(), _took(4.0))
    assert breaker.state is BreakerState.OPEN
    clock.advance(10)
    breaker.record_success(breaker.admit(), _took(0.2))
    assert breaker.state is BreakerState.CLOSED


def test_slow_model_is_skipped_after_its_answers(manager: LLMManager, clock: FakeClock) -> None:
    """A model answering in 3 s (threshold 1 s) serves its answers, then the fallback serves."""
    slow = ScriptedModel(default=Reply("slow answer", latency=3.0), clock=clock)
    policy = BreakerPolicy(
        slow_call_duration_threshold=1.0, minimum_number_of_calls=3, sliding_window_size=3
    )
    manager.register_model("slow", slow, breaker=policy)
    manager.register_model("fast", ScriptedModel(default="fast answer"))
    manager.set_fallback_chain(["fast"])
    answers = [manager.generate(f"q{n}", use_cache=False) for n in range(5)]
    assert answers == ["slow answer"] * 3 + ["fast answer"] * 2
    assert len(slow.calls) == 3
    info = manager.get_model_info("slow")["breaker"]
    assert (info["state"], info["ejections"]) == ("open", 1)


def test_stream_slowness_is_its_time_to_first_chunk(manager: LLMManager, clock: FakeClock) -> None:
    """A stream whose first chunk comes at once is not slow however long it is."""
    long_answer = "word " * 200
    model = ScriptedModel(default=long_answer, chunk_size=1, clock=clock)
    policy = BreakerPolicy(
        slow_call_duration_threshold=0.5, minimum_number_of_calls=1, sliding_window_size=1
    )
    manager.register_model("m", model, breaker=policy)

    for _ in range(3):
        stream = manager.stream("q", use_cache=False)
        for _chunk in stream:
            clock.advance(0.01)  # 1,000 chunks: 10 s for the whole answer
    assert manager.get_model_info("m")["breaker"]["slow_call_rate"] == 0.0


# -- growing open time ---------------------------------------------------------------------


def _trials_until_open(breaker: ModelBreaker, clock: FakeClock, failed_trials: int) -> list[float]:
    """Open times seen as each trial fails in turn (the first entry: the first opening)."""
    breaker.record_failure(breaker.admit())
    seen = [float(breaker.snapshot()["open_time"])]  # type: ignore[arg-type]
    for _ in range(failed_trials):
        wait = breaker.retry_in()
        clock.advance(wait - 0.001)
        assert breaker.admit() is Admission.REJECTED
        clock.advance(0.002)
        trial = breaker.admit()
        assert isinstance(trial, Trial)
        breaker.record_failure(trial)
        seen.append(float(breaker.snapshot()["open_time"]))  # type: ignore[arg-type]
    return seen


def test_open_time_grows_with_each_failed_trial_up_to_the_cap(clock: FakeClock) -> None:
    """Open 10 s, then 20, 30, 40, then capped at 45 s; a successful trial starts over."""
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=10, max_recovery_timeout=45)
    breaker = ModelBreaker("m", policy, clock)
    assert _trials_until_open(breaker, clock, 5) == [10, 20, 30, 40, 45, 45]
    assert breaker.ejections == 6
    clock.advance(45)
    breaker.record_success(breaker.admit())
    assert (breaker.state, breaker.ejections) == (BreakerState.CLOSED, 0)
    assert _trials_until_open(breaker, clock, 1) == [10, 20]


def test_open_time_jitter_is_bounded_and_drawn_outside_the_lock(clock: FakeClock) -> None:
    """Jitter adds [0, recovery_jitter) seconds; the random source never runs under our lock."""
    fractions = iter([0.0, 0.5, 0.999, 0.25, 0.75])
    locked_while_drawing: list[bool] = []

    def random() -> float:
        locked_while_drawing.append(breaker._lock.locked())
        return next(fractions)

    policy = BreakerPolicy(
        failure_threshold=1, recovery_timeout=10, max_recovery_timeout=30, recovery_jitter=4
    )
    breaker = ModelBreaker("m", policy, clock, random=random)
    seen = _trials_until_open(breaker, clock, 4)
    assert seen == pytest.approx([10.0, 22.0, 33.996, 31.0, 33.0])
    assert all(10 <= wait < 30 + 4 for wait in seen)
    assert locked_while_drawing == [False] * 5


def test_growing_open_time_in_the_manager(manager: LLMManager, clock: FakeClock) -> None:
    """A dead primary gets its trials at 10 s, then 20 s, then 30 s later: 3 calls in 60 s."""
    primary = ScriptedModel(default=ServerError("down"))
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=10, max_recovery_timeout=300)
    manager.register_model("primary", primary, breaker=policy, retry=None)
    manager.register_model("backup", ScriptedModel(default="b"))
    manager.set_fallback_chain(["backup"])
    calls_at: list[int] = []
    for _ in range(61):
        manager.generate("q", use_cache=False)
        calls_at.append(len(primary.calls))
        clock.advance(1)
    first = calls_at[0]
    trial_seconds = [t for t in range(1, 61) if calls_at[t] > calls_at[t - 1]]
    assert trial_seconds == [10, 30, 60]
    assert calls_at[-1] == first + 3
    assert manager.get_model_info("primary")["breaker"]["ejections"] == 4


# -- panic threshold -----------------------------------------------------------------------


class _Member(NamedTuple):
    breaker: ModelBreaker


def _route(clock: FakeClock, opened: int, panic: float | None = 50) -> list[_Member]:
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=600, panic_threshold=panic)
    route = [_Member(ModelBreaker(name, policy, clock)) for name in "abc"]
    for member in route[:opened]:
        member.breaker.record_failure(member.breaker.admit())
    return route


def test_panic_lets_one_trial_through_when_most_of_the_route_is_open(clock: FakeClock) -> None:
    """Two of three open (33% healthy < 50%): an open breaker takes one trial at once."""
    route = _route(clock, opened=2)
    breaker = route[0].breaker
    assert breaker.admit() is Admission.REJECTED
    trial = breaker.admit_in_panic(route)
    assert isinstance(trial, Trial)
    assert breaker.admit_in_panic(route) is Admission.REJECTED  # the trial slot is taken
    breaker.record_success(trial)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["panic_trials"] == 1


def test_no_panic_while_enough_of_the_route_is_healthy(clock: FakeClock) -> None:
    """One of three open (67% healthy >= 50%): the open breaker is respected."""
    route = _route(clock, opened=1)
    assert route[0].breaker.admit_in_panic(route) is Admission.REJECTED


def test_no_panic_without_a_threshold(clock: FakeClock) -> None:
    """Without panic_threshold an all-open route fails fast, as by default."""
    route = _route(clock, opened=3, panic=None)
    assert route[0].breaker.admit_in_panic(route) is Admission.REJECTED


def test_failed_panic_trial_reopens_and_lengthens_nothing_else(clock: FakeClock) -> None:
    """A failed panic trial re-opens the breaker; the next panic request may try again."""
    route = _route(clock, opened=3)
    breaker = route[2].breaker
    breaker.record_failure(breaker.admit_in_panic(route))
    assert breaker.state is BreakerState.OPEN
    assert isinstance(breaker.admit_in_panic(route), Trial)


def _all_open(panic: float | None) -> tuple[LLMManager, FakeClock, list[ScriptedModel]]:
    clock = FakeClock()
    manager = LLMManager(clock=clock, random=lambda: 0.0, max_retries=0, enable_caching=False)
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=600, panic_threshold=panic)
    models = [ScriptedModel([ServerError("blip")], default=name) for name in "abc"]
    for name, model in zip("abc", models, strict=True):
        manager.register_model(name, model, breaker=policy)
    manager.set_fallback_chain(["b", "c"])
    with pytest.raises(AllModelsFailedError):
        manager.generate("q")  # one blip each: every breaker opens
    return manager, clock, models


def test_without_panic_an_all_open_route_fails_fast() -> None:
    """Every breaker open, no panic threshold: requests fail with no upstream call."""
    manager, _, models = _all_open(panic=None)
    with pytest.raises(AllModelsFailedError) as caught:
        manager.generate("q")
    assert {f.reason for f in caught.value.failures} == {FailureReason.CIRCUIT_OPEN}
    assert [len(m.calls) for m in models] == [1, 1, 1]


def test_panic_keeps_an_all_open_route_serving(ask: Ask, manager: LLMManager) -> None:
    """Every breaker open after a blip, panic at 50%: the next request is served, and closes one."""
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=600, panic_threshold=50)
    models = [ScriptedModel(default=ServerError("blip")) for _ in "abc"]
    for name, model in zip("abc", models, strict=True):
        manager.register_model(name, model, breaker=policy, retry=None)
    manager.set_fallback_chain(["b", "c"])
    with pytest.raises(AllModelsFailedError):
        ask("q", use_cache=False)  # one blip each opens all three
    for name, model in zip("abc", models, strict=True):
        model.default = name
    assert [manager.get_model_info(n)["breaker"]["state"] for n in "abc"] == ["open"] * 3
    response = ask("q", use_cache=False)
    assert response.text == "a"
    assert manager.get_model_info("a")["breaker"]["state"] == "closed"
    assert manager.get_model_info("a")["breaker"]["panic_trials"] == 1


# -- what users see ------------------------------------------------------------------------


def test_model_info_shows_the_failure_rate_and_ejections(manager: LLMManager) -> None:
    """get_model_info reports the window's calls and rates, open time and ejection count."""
    model = ScriptedModel(["ok", ServerError("x"), "ok", "ok"])
    policy = BreakerPolicy(failure_rate_threshold=50, minimum_number_of_calls=4)
    manager.register_model("m", model, breaker=policy, retry=None)
    manager.register_model("b", ScriptedModel())
    manager.set_fallback_chain(["b"])
    for n in range(2):  # ok; then a failure and its retry, ok
        manager.generate(f"q{n}", use_cache=False)
    info = manager.get_model_info("m")["breaker"]
    assert {k: info[k] for k in ("window_calls", "failure_rate", "ejections", "open_time")} == {
        "window_calls": 3,
        "failure_rate": 33.33,
        "ejections": 0,
        "open_time": 60.0,
    }
    metrics = manager.get_metrics()["models"]["m"]
    assert (metrics["breaker_failure_rate"], metrics["breaker_ejections"]) == (33.33, 0)


def test_default_breaker_snapshot_has_no_window(manager: LLMManager) -> None:
    """With the default policy the new fields say there is no window and no panic trial."""
    manager.register_model("m", ScriptedModel())
    info = manager.get_model_info("m")["breaker"]
    assert (info["window_calls"], info["failure_rate"], info["panic_trials"]) == (None, None, 0)


def test_readme_breaker_snippet_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's breaker and retry-budget example runs as written and shows what it says."""
    monkeypatch.setattr("reliable_llm._manager.SystemClock", FakeClock)
    section = README.read_text().split("## Breakers that fit real failure patterns", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["ok", "66.67 0"]
    assert lines[2] == (
        "{'percent': 20, 'window': 10.0, 'requests': 1, 'retries': 2, 'allowed': 3}"
    )


def test_panic_sends_a_dead_model_one_call_at_a_time(clock: FakeClock) -> None:
    """100 concurrent tasks on a dead all-open route in panic: one call at a time per model."""
    in_flight = dict.fromkeys("abc", 0)
    most = dict.fromkeys("abc", 0)
    calls = dict.fromkeys("abc", 0)

    def dead(name: str) -> Callable[..., Awaitable[str]]:
        async def call(prompt: str, **kwargs: object) -> str:
            in_flight[name] += 1
            calls[name] += 1
            most[name] = max(most[name], in_flight[name])
            try:
                await asyncio.sleep(0)  # let the other tasks run meanwhile
                raise ServerError("down")
            finally:
                in_flight[name] -= 1

        return call

    manager = LLMManager(clock=clock, random=lambda: 0.0, max_retries=0, enable_caching=False)
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=600, panic_threshold=50)
    for name in "abc":
        manager.register_model(name, dead(name), breaker=policy)
    manager.set_fallback_chain(["b", "c"])

    async def main() -> list[BaseException | str]:
        await asyncio.gather(manager.agenerate("blip"), return_exceptions=True)  # all open
        return await asyncio.gather(
            *(manager.agenerate(f"q{n}") for n in range(100)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert all(isinstance(o, AllModelsFailedError) for o in outcomes)
    assert most == dict.fromkeys("abc", 1)
    # Each model: the blip, then one panic trial; the other requests found the slots taken.
    assert calls == dict.fromkeys("abc", 2)
