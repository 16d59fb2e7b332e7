"""The circuit breaker state machine on a fake clock, alone and inside the manager."""

from __future__ import annotations

import pytest
from drivers import Ask, ask_with

from reliable_llm import (
    AllModelsFailedError,
    AuthenticationError,
    BreakerPolicy,
    BreakerState,
    CircuitOpenError,
    FailureReason,
    InvalidRequestError,
    LLMManager,
    ServerError,
)
from reliable_llm._breaker import Admission, ModelBreaker, Trial
from reliable_llm.events import BreakerTransition, Event
from reliable_llm.testing import FakeClock, ScriptedModel


def _breaker(clock: FakeClock, threshold: int = 5, recovery: float = 60.0) -> ModelBreaker:
    return ModelBreaker("m", BreakerPolicy(threshold, recovery), clock)


def test_opens_after_consecutive_failures_only(clock: FakeClock) -> None:
    """Four failures, a success, four failures: still closed; the fifth in a row opens it."""
    breaker = _breaker(clock)
    for _ in range(4):
        breaker.record_failure(breaker.admit())
    breaker.record_success(breaker.admit())
    for _ in range(4):
        breaker.record_failure(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(breaker.admit())
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit() is Admission.REJECTED


def test_half_open_admits_exactly_one_trial(clock: FakeClock) -> None:
    """After the recovery timeout one trial goes through; others are rejected meanwhile."""
    breaker = _breaker(clock, threshold=1, recovery=60)
    breaker.record_failure(breaker.admit())
    clock.advance(59.9)
    assert breaker.admit() is Admission.REJECTED
    clock.advance(0.1)
    assert isinstance(breaker.admit(), Trial)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is Admission.REJECTED
    assert breaker.admit() is Admission.REJECTED


def test_successful_trial_closes(clock: FakeClock) -> None:
    """A successful half-open trial closes the breaker and lets calls run concurrently."""
    breaker = _breaker(clock, threshold=1, recovery=1)
    breaker.record_failure(breaker.admit())
    clock.advance(1)
    breaker.record_success(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
    assert [breaker.admit() for _ in range(3)] == [Admission.ALLOWED] * 3


def test_failed_trial_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    """A failed trial re-opens the breaker, which waits a whole recovery timeout again."""
    breaker = _breaker(clock, threshold=1, recovery=10)
    breaker.record_failure(breaker.admit())
    clock.advance(10)
    breaker.record_failure(breaker.admit())
    assert breaker.state is BreakerState.OPEN
    clock.advance(9.99)
    assert breaker.admit() is Admission.REJECTED
    clock.advance(0.01)
    assert isinstance(breaker.admit(), Trial)


def test_neutral_trial_frees_the_slot(clock: FakeClock) -> None:
    """A trial that ends breaker-neutral (bad request) lets the next request try."""
    breaker = _breaker(clock, threshold=1, recovery=1)
    breaker.record_failure(breaker.admit())
    clock.advance(1)
    trial = breaker.admit()
    breaker.record(trial, InvalidRequestError("bad"))
    assert breaker.state is BreakerState.HALF_OPEN
    assert isinstance(breaker.admit(), Trial)


def test_check_raises_circuit_open_error(clock: FakeClock) -> None:
    """check() raises a typed error saying when the next trial is due."""
    breaker = _breaker(clock, threshold=1, recovery=30)
    breaker.record_failure(breaker.admit())
    clock.advance(10)
    with pytest.raises(CircuitOpenError, match=r"next trial in 20\.0s"):
        breaker.check()


def test_open_breaker_skips_the_model_without_calling_it(manager: LLMManager, ask: Ask) -> None:
    """Once open, the primary gets no upstream call and the fallback answers at once."""
    primary = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", primary, breaker=BreakerPolicy(failure_threshold=2))
    manager.register_model("backup", ScriptedModel(default="b"))
    manager.set_fallback_chain(["backup"])
    ask("one", use_cache=False)
    assert primary.call_count == 2
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"
    response = ask("two", use_cache=False)
    assert response.model == "backup"
    assert primary.call_count == 2


def test_manager_recovers_through_half_open(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """After the recovery timeout the primary's trial succeeds and it serves again."""
    events: list[Event] = []
    manager.add_hook(events.append)
    primary = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", primary, breaker=BreakerPolicy(2, recovery_timeout=60))
    manager.register_model("backup", ScriptedModel(default="b"))
    manager.set_fallback_chain(["backup"])
    ask("one", use_cache=False)
    primary.default = "back"
    clock.advance(60)
    assert ask("two", use_cache=False).model == "primary"
    transitions = [(e.old, e.new) for e in events if isinstance(e, BreakerTransition)]
    assert transitions == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert manager.get_metrics()["models"]["primary"]["breaker_state"] == "closed"


def test_failed_trial_in_manager_is_not_retried(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """A failing half-open trial re-opens at once: one upstream call, then the fallback."""
    primary = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", primary, breaker=BreakerPolicy(1, recovery_timeout=5))
    manager.register_model("backup", ScriptedModel(default="b"))
    manager.set_fallback_chain(["backup"])
    ask("one", use_cache=False)
    clock.advance(5)
    calls = primary.call_count
    assert ask("two", use_cache=False).model == "backup"
    assert primary.call_count == calls + 1
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"


def test_reset_circuit_breaker_closes_it(manager: LLMManager, ask: Ask) -> None:
    """reset_circuit_breaker() closes an open breaker so the model is tried again."""
    primary = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", primary, breaker=BreakerPolicy(1))
    with pytest.raises(AllModelsFailedError):
        ask("one", use_cache=False)
    with pytest.raises(AllModelsFailedError) as caught:
        ask("two", use_cache=False)
    assert caught.value.failures[0].reason is FailureReason.CIRCUIT_OPEN
    manager.reset_circuit_breaker("primary")
    primary.default = "ok"
    assert ask("three", use_cache=False).text == "ok"


def test_breaker_transitions_are_logged(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Opening a breaker writes one warning line naming the model and the transition."""
    manager = LLMManager(max_retries=0, clock=clock)
    manager.register_model(
        "primary", ScriptedModel(default=ServerError("x")), breaker=BreakerPolicy(1)
    )
    with caplog.at_level("INFO", logger="reliable_llm"), pytest.raises(AllModelsFailedError):
        ask_with("sync", manager, "hi")
    lines = [r.getMessage() for r in caplog.records if "circuit breaker" in r.getMessage()]
    assert lines == ["circuit breaker for model 'primary': closed -> open"]


def test_response_names_the_models_given_up(manager: LLMManager, ask: Ask) -> None:
    """A response lists the models given up before it, breaker-skipped ones included."""
    manager.register_model(
        "a", ScriptedModel(default=ServerError("down")), breaker=BreakerPolicy(1)
    )
    manager.register_model("b", ScriptedModel(default=AuthenticationError("bad key")))
    manager.register_model("c", ScriptedModel(default="c answers"))
    manager.set_fallback_chain(["b", "c"])
    manager.chat("first", use_cache=False)
    response = manager.chat("second", use_cache=False)
    assert response.model == "c"
    assert (response.fallback_from, response.fallbacks) == (("a", "b"), 2)
    assert [a.model for a in response.attempts] == ["b", "c"]


def test_recovery_timeout_is_exact_on_a_fake_clock() -> None:
    """Advancing a fake clock by exactly the recovery timeout always allows the trial."""
    for start in (43.27670679050534, 2.54458609934608, 21.659939713061338):  # (t+30)-t < 30
        clock = FakeClock(start)
        breaker = _breaker(clock, threshold=1, recovery=30)
        breaker.record_failure(breaker.admit())
        clock.advance(30)
        assert isinstance(breaker.admit(), Trial), start
