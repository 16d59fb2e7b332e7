"""Policies validate at construction; backoff stays within its bounds."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliable_llm import (
    BreakerPolicy,
    CachePolicy,
    ConfigurationError,
    LLMManager,
    RateLimitError,
    RetryPolicy,
    TimeoutPolicy,
)
from reliable_llm._decisions import next_step
from reliable_llm._errors import FailureReason


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: RetryPolicy(max_retries=-1), "max_retries"),
        (lambda: RetryPolicy(max_retries=1000), "max_retries"),
        (lambda: RetryPolicy(max_retries=True), "max_retries"),
        (lambda: RetryPolicy(initial_delay=-1), "initial_delay"),
        (lambda: RetryPolicy(multiplier=0.5), "multiplier"),
        (lambda: RetryPolicy(initial_delay=10, max_delay=1), "max_delay"),
        (lambda: RetryPolicy(jitter=2), "jitter"),
        (lambda: RetryPolicy(initial_delay=math.inf), "initial_delay"),
        (lambda: BreakerPolicy(failure_threshold=0), "failure_threshold"),
        (lambda: BreakerPolicy(recovery_timeout=0), "recovery_timeout"),
        (lambda: CachePolicy(max_size=0), "max_size"),
        (lambda: CachePolicy(ttl=-5), "ttl"),
        (lambda: TimeoutPolicy(total=0), "total"),
        (lambda: TimeoutPolicy(per_attempt=math.nan), "per_attempt"),
    ],
)
def test_invalid_policy_values_raise(factory: object, message: str) -> None:
    """Each invalid value raises a ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match=message):
        factory()  # type: ignore[operator]


def test_defaults_follow_the_seed() -> None:
    """Defaults: 3 retries, 1 s doubling backoff, 5 failures open, 60 s recovery."""
    retry, breaker = RetryPolicy(), BreakerPolicy()
    assert [retry.backoff(n, 0.0) for n in range(3)] == [1.0, 2.0, 4.0]
    assert (retry.max_retries, breaker.failure_threshold, breaker.recovery_timeout) == (3, 5, 60.0)


@given(
    st.integers(min_value=0, max_value=200),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.floats(min_value=0.001, max_value=10),
    st.floats(min_value=1, max_value=4),
    st.floats(min_value=0, max_value=1),
)
def test_backoff_bounds(n: int, rand: float, initial: float, mult: float, jitter: float) -> None:
    """Property: a wait is never above max_delay nor below (1 - jitter) of the capped base."""
    policy = RetryPolicy(initial_delay=initial, multiplier=mult, max_delay=30, jitter=jitter)
    base = min(30.0, initial * mult ** min(n, 64))
    delay = policy.backoff(n, rand)
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9 <= 30 + 1e-9


@given(st.integers(min_value=1, max_value=10), st.floats(min_value=0, max_value=100))
def test_retries_are_bounded(attempt: int, time_left: float) -> None:
    """Property: past max_retries (or the deadline) the decision is always to stop."""
    policy = RetryPolicy(max_retries=3)
    step = next_step(policy, attempt, RateLimitError("x"), time_left, True, 0.5)
    if time_left <= 0:
        assert step is FailureReason.DEADLINE_EXCEEDED
    elif attempt > 3:
        assert step is FailureReason.RETRIES_EXHAUSTED
    else:
        assert isinstance(step, float) or step is FailureReason.BACKOFF_EXCEEDS_DEADLINE
        if isinstance(step, float):
            assert step < time_left


def test_a_wait_that_does_not_fit_gives_up_the_model_not_the_request() -> None:
    """A backoff longer than the time left gives the model up; only no time left is the
    request's deadline."""
    policy = RetryPolicy(max_retries=3)
    error = RateLimitError("x")
    assert next_step(policy, 3, error, 2.0, True, 0.0) is FailureReason.BACKOFF_EXCEEDS_DEADLINE
    assert next_step(policy, 3, error, 0.0, True, 0.0) is FailureReason.DEADLINE_EXCEEDED


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: LLMManager(retry=3), r"retry must be a RetryPolicy such as RetryPolicy\("),
        (lambda: LLMManager(breaker={"failure_threshold": 3}), "breaker must be a BreakerPolicy"),
        (lambda: LLMManager(cache=60), "cache must be a CachePolicy"),
        (lambda: LLMManager(timeouts=30), r"timeouts must be a TimeoutPolicy such as"),
        (
            lambda: LLMManager().register_model("m", lambda p: p, retry=2),
            "retry must be a RetryPolicy",
        ),
        (
            lambda: LLMManager().register_model("m", lambda p: p, breaker=5),
            "breaker must be a BreakerPolicy",
        ),
    ],
)
def test_a_policy_of_the_wrong_type_is_a_configuration_error(
    call: Callable[[], object], message: str
) -> None:
    """A number or dict where a policy object belongs fails by parameter name, with an example,
    instead of an AttributeError later."""
    with pytest.raises(ConfigurationError, match=message):
        call()


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: BreakerPolicy(failure_rate_threshold=0.5), "failure_rate_threshold"),
        (
            lambda: BreakerPolicy(slow_call_duration_threshold=2.0, slow_call_rate_threshold=0.8),
            "slow_call_rate_threshold",
        ),
        (lambda: BreakerPolicy(panic_threshold=0.5), "panic_threshold"),
        (lambda: RetryPolicy(retry_budget_percent=0.2), "retry_budget_percent"),
    ],
)
def test_a_percentage_that_looks_like_a_fraction_warns(
    make: Callable[[], object], name: str
) -> None:
    """0.5 where a percentage belongs is accepted (it may be meant) with a warning naming the
    field and the value that means 50 %; 50.0 gives no warning."""
    with pytest.warns(UserWarning, match=rf"{name}=0\.\d is a percentage: .* pass \d+ for"):
        make()


def test_percentages_of_one_and_above_do_not_warn() -> None:
    """Whole percentages, the documented form, pass silently (warnings are errors here)."""
    BreakerPolicy(failure_rate_threshold=50.0, panic_threshold=1, slow_call_rate_threshold=100)
    RetryPolicy(retry_budget_percent=20.0)
