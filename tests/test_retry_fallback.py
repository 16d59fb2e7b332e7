"""Retries, fallback and error classification, through all four drivers."""

from __future__ import annotations

import pytest
from drivers import Ask, ask_with

from reliable_llm import (
    AllModelsFailedError,
    AuthenticationError,
    ContextWindowExceededError,
    FailureReason,
    InvalidRequestError,
    LLMManager,
    ModelNotFoundError,
    OverloadedError,
    ProviderTimeoutError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TimeoutPolicy,
    TransientError,
)
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


def _pair(manager: LLMManager, primary: ScriptedModel) -> ScriptedModel:
    backup = ScriptedModel(default="from backup")
    manager.register_model("primary", primary)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    return backup


@pytest.mark.parametrize(
    "error",
    [RateLimitError("429"), ProviderTimeoutError("t"), ServerError("503"), OverloadedError("529")],
)
def test_transient_errors_are_retried_on_the_same_model(
    manager: LLMManager, clock: FakeClock, ask: Ask, error: Exception
) -> None:
    """A transient failure is retried on the same model, which then answers."""
    primary = ScriptedModel([error, error, "recovered"])
    backup = _pair(manager, primary)
    response = ask("hi")
    assert (response.model, response.text) == ("primary", "recovered")
    assert primary.call_count == 3
    assert backup.call_count == 0
    assert clock.sleeps == [1.0, 2.0]


def test_backoff_is_exponential_then_falls_back(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """Seed backoff: 1 s, 2 s, 4 s between the 4 attempts; then the fallback answers."""
    primary = ScriptedModel(default=ServerError("down", status_code=503))
    backup = _pair(manager, primary)
    response = ask("hi")
    assert (response.model, response.text) == ("backup", "from backup")
    assert primary.call_count == 4
    assert backup.call_count == 1
    assert clock.sleeps == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (AuthenticationError("bad key", status_code=401), 1),
        (ModelNotFoundError("no such model", status_code=404), 1),
        (ContextWindowExceededError("too long", status_code=400), 0),
        (InvalidRequestError("bad param", status_code=400), 0),
    ],
)
def test_non_retryable_errors_fall_back_at_once(
    manager: LLMManager, clock: FakeClock, ask: Ask, error: Exception, counts: int
) -> None:
    """Auth/not-found count against the breaker, request errors do not; neither is retried."""
    primary = ScriptedModel([error])
    backup = _pair(manager, primary)
    response = ask("hi")
    assert response.model == "backup"
    assert primary.call_count == 1
    assert backup.call_count == 1
    assert clock.sleeps == []
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == counts


def test_foreign_exceptions_count_as_transient(manager: LLMManager, ask: Ask) -> None:
    """An arbitrary exception from a plain callable is retried like a transient error."""
    calls: list[str] = []

    def flaky(prompt: str) -> str:
        calls.append(prompt)
        if len(calls) < 2:
            raise RuntimeError("socket hiccup")
        return "fine"

    manager.register_model("flaky", flaky)
    assert ask("hi").text == "fine"
    assert len(calls) == 2


def test_classifier_decides_for_foreign_exceptions(manager: LLMManager, ask: Ask) -> None:
    """A user classifier can make a foreign exception non-retryable and breaker-neutral."""

    def broken(prompt: str) -> str:
        raise KeyError("missing field")

    manager.register_model(
        "broken", broken, classify_error=lambda exc: InvalidRequestError(f"bad request: {exc}")
    )
    manager.register_model("backup", ScriptedModel(default="ok"))
    manager.set_fallback_chain(["backup"])
    assert ask("hi").model == "backup"
    info = manager.get_model_info("broken")
    assert (info["attempts"], info["breaker"]["failure_count"]) == (1, 0)
    assert info["last_error_type"] == "InvalidRequestError"


def test_all_models_failing_raises_one_typed_error_with_every_cause(
    manager: LLMManager, ask: Ask
) -> None:
    """When every model fails, the error names each model, its reason and its exceptions."""
    manager.register_model("a", ScriptedModel(default=AuthenticationError("bad key")))
    manager.register_model("b", ScriptedModel(default=ServerError("down")))
    manager.set_fallback_chain(["b"])
    with pytest.raises(AllModelsFailedError) as caught:
        ask("hi")
    failures = caught.value.failures
    assert [(f.model, f.reason) for f in failures] == [
        ("a", FailureReason.NON_RETRYABLE),
        ("b", FailureReason.RETRIES_EXHAUSTED),
    ]
    assert [len(f.errors) for f in failures] == [1, 4]
    assert isinstance(caught.value.__cause__, ServerError)
    assert "a: non_retryable" in str(caught.value) and "b: retries_exhausted" in str(caught.value)


def test_each_model_is_tried_at_most_once(manager: LLMManager, ask: Ask) -> None:
    """The active model listed again in the chain is not tried twice in one request."""
    a = ScriptedModel(default=AuthenticationError("x"))
    manager.register_model("a", a)
    manager.register_model("b", ScriptedModel(default=AuthenticationError("y")))
    manager.set_fallback_chain(["b", "a"])
    with pytest.raises(AllModelsFailedError) as caught:
        ask("hi")
    assert [f.model for f in caught.value.failures] == ["a", "b"]
    assert a.call_count == 1


def test_retry_after_hint_is_honoured(manager: LLMManager, clock: FakeClock, ask: Ask) -> None:
    """A Retry-After longer than the computed backoff is waited out before the retry."""
    manager.register_model("a", ScriptedModel([RateLimitError("429", retry_after=7), "ok"]))
    assert ask("hi").text == "ok"
    assert clock.sleeps == [7.0]


def test_retry_after_beyond_the_deadline_moves_on_at_once(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """A Retry-After that does not fit in the time left gives the model up without sleeping."""
    primary = ScriptedModel([RateLimitError("429", retry_after=30)])
    _pair(manager, primary)
    response = ask("hi", timeout=10)
    assert response.model == "backup"
    assert clock.sleeps == []
    assert primary.call_count == 1


def test_one_deadline_bounds_every_retry_and_fallback(clock: FakeClock, driver: str) -> None:
    """With a 10 s budget, slow failing attempts stop when the budget is spent."""

    manager = LLMManager(
        clock=clock, random=lambda: 0.0, timeouts=TimeoutPolicy(total=10, per_attempt=5)
    )
    slow = ScriptedModel(default=Reply(ServerError("slow 503"), latency=3.0), clock=clock)
    other = ScriptedModel(default=Reply(ServerError("also down"), latency=3.0), clock=clock)
    manager.register_model("a", slow)
    manager.register_model("b", other)
    manager.set_fallback_chain(["b"])
    with pytest.raises(AllModelsFailedError) as caught:
        ask_with(driver, manager, "hi")
    assert caught.value.deadline_exceeded
    assert clock.monotonic() <= 10 + 3.0
    assert slow.call_count + other.call_count <= 4


def test_per_attempt_timeout_is_passed_to_the_provider(clock: FakeClock) -> None:
    """Providers receive min(per-attempt timeout, time left) as their timeout."""
    seen: list[float | None] = []

    class Recorder(ScriptedModel):
        def complete(self, request, *, timeout=None):  # type: ignore[no-untyped-def]
            seen.append(timeout)
            return super().complete(request, timeout=timeout)

    manager = LLMManager(clock=clock, timeouts=TimeoutPolicy(total=100, per_attempt=30))
    manager.register_model("a", Recorder())
    manager.chat("hi", use_cache=False)
    manager.chat("hi", use_cache=False, timeout=12)
    assert seen == [30, 12]


def test_zero_retries_means_one_attempt(clock: FakeClock, driver: str) -> None:
    """max_retries=0 makes exactly one attempt per model."""

    manager = LLMManager(max_retries=0, clock=clock)
    primary = ScriptedModel(default=TransientError("x"))
    manager.register_model("a", primary)
    with pytest.raises(AllModelsFailedError):
        ask_with(driver, manager, "hi")
    assert primary.call_count == 1


def test_per_model_retry_policy_overrides_the_default(manager: LLMManager, ask: Ask) -> None:
    """A model registered with its own RetryPolicy retries by that policy."""
    primary = ScriptedModel(default=ServerError("x"))
    manager.register_model("a", primary, retry=RetryPolicy(max_retries=1))
    with pytest.raises(AllModelsFailedError):
        ask("hi")
    assert primary.call_count == 2


def test_per_call_model_and_chain_override(manager: LLMManager, ask: Ask) -> None:
    """model= and fallback_chain= on a call replace the configured route for that call only."""
    a, b, c = (
        ScriptedModel(default="a"),
        ScriptedModel(default=ServerError("b down")),
        ScriptedModel(default="c"),
    )
    for name, model in (("a", a), ("b", b), ("c", c)):
        manager.register_model(name, model)
    assert ask("hi", model="b", fallback_chain=["c"], use_cache=False).model == "c"
    assert ask("hi", use_cache=False).model == "a"


def test_configuration_errors_from_a_model_propagate_at_once(manager: LLMManager, ask: Ask) -> None:
    """A model that is misconfigured (say, no API key) raises that error: no retry, no fallback."""
    from reliable_llm import ConfigurationError

    primary = ScriptedModel(default=ConfigurationError("set OPENAI_API_KEY"))
    backup = _pair(manager, primary)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        ask("hi")
    assert (primary.call_count, backup.call_count) == (1, 0)
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 0


def test_response_says_why_each_model_was_given_up(manager: LLMManager, ask: Ask) -> None:
    """fallback_reasons pairs each model of fallback_from with why it was given up; a cache
    hit has neither."""
    manager.register_model("a", ScriptedModel(default=ServerError("down", status_code=503)))
    manager.register_model("b", ScriptedModel(default=InvalidRequestError("no such parameter")))
    manager.register_model("c", ScriptedModel(default="fine"))
    manager.set_fallback_chain(["b", "c"])
    response = ask("hi")
    assert response.fallback_from == ("a", "b")
    assert response.fallback_reasons == ("retries_exhausted", "non_retryable")
    again = ask("hi")
    assert again.cached and (again.fallback_from, again.fallback_reasons) == ((), ())


def test_the_cause_is_the_last_provider_error_when_the_last_model_was_open(
    clock: FakeClock,
) -> None:
    """A request ending at an open model raises with the earlier model's error as its cause."""
    from reliable_llm import BreakerPolicy

    manager = LLMManager(
        clock=clock,
        random=lambda: 0.0,
        enable_caching=False,
        max_retries=0,
        breaker=BreakerPolicy(1, recovery_timeout=1000),
    )
    manager.register_model("a", ScriptedModel(default=ServerError("a is down")))
    manager.register_model("b", ScriptedModel(default=AuthenticationError("bad key")))
    with pytest.raises(AllModelsFailedError):
        manager.generate("open b", model="b", fallback_chain=[])
    with pytest.raises(AllModelsFailedError) as caught:
        manager.generate("hi", model="a", fallback_chain=["b"])
    assert [f.reason for f in caught.value.failures] == [
        FailureReason.CIRCUIT_OPENED,  # a's failure opened its breaker
        FailureReason.CIRCUIT_OPEN,
    ]
    assert isinstance(caught.value.__cause__, ServerError)
    assert str(caught.value.__cause__).startswith("a is down")
    assert str(caught.value).endswith("b: circuit_open")
