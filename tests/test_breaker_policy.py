"""Opt-in breaker and retry-budget settings validate at construction; open times stay bounded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliable_llm import BreakerPolicy, ConfigurationError, RetryPolicy


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: BreakerPolicy(failure_rate_threshold=0), "failure_rate_threshold"),
        (lambda: BreakerPolicy(failure_rate_threshold=150), "failure_rate_threshold"),
        (lambda: BreakerPolicy(failure_rate_threshold=0.5j), "failure_rate_threshold"),
        (lambda: BreakerPolicy(failure_rate_threshold=math.nan), "failure_rate_threshold"),
        (lambda: BreakerPolicy(minimum_number_of_calls=0), "minimum_number_of_calls"),
        (lambda: BreakerPolicy(minimum_number_of_calls=2.5), "minimum_number_of_calls"),
        (lambda: BreakerPolicy(sliding_window_type="COUNT"), "sliding_window_type"),
        (lambda: BreakerPolicy(sliding_window_size=0), "sliding_window_size"),
        (lambda: BreakerPolicy(sliding_window_size=10**6), "sliding_window_size"),
        (lambda: BreakerPolicy(sliding_window_size=True), "sliding_window_size"),
        (
            lambda: BreakerPolicy(
                failure_rate_threshold=50, minimum_number_of_calls=50, sliding_window_size=20
            ),
            "could never hold enough calls",
        ),
        (
            lambda: BreakerPolicy(failure_rate_threshold=50, sliding_window_size=20),
            r"minimum_number_of_calls \(100 \(the default\)\).*set minimum_number_of_calls <= 20",
        ),
        (lambda: BreakerPolicy(slow_call_duration_threshold=0), "slow_call_duration_threshold"),
        (
            lambda: BreakerPolicy(slow_call_duration_threshold=math.inf),
            "slow_call_duration_threshold",
        ),
        (lambda: BreakerPolicy(slow_call_rate_threshold=0), "slow_call_rate_threshold"),
        (lambda: BreakerPolicy(slow_call_rate_threshold=101), "slow_call_rate_threshold"),
        (
            lambda: BreakerPolicy(recovery_timeout=60, max_recovery_timeout=30),
            r"max_recovery_timeout .* >= recovery_timeout \(60\)",
        ),
        (lambda: BreakerPolicy(recovery_jitter=-1), "recovery_jitter"),
        (lambda: BreakerPolicy(recovery_jitter=math.inf), "recovery_jitter"),
        (lambda: BreakerPolicy(panic_threshold=0), "panic_threshold"),
        (lambda: BreakerPolicy(panic_threshold=0.5j), "panic_threshold"),
        (lambda: BreakerPolicy(panic_threshold=120), "panic_threshold"),
        (lambda: RetryPolicy(retry_budget_percent=-1), "retry_budget_percent"),
        (lambda: RetryPolicy(retry_budget_percent=101), "retry_budget_percent"),
        (lambda: RetryPolicy(retry_budget_percent="20%"), "retry_budget_percent"),
        (lambda: RetryPolicy(retry_budget_min_retries=-1), "retry_budget_min_retries"),
        (lambda: RetryPolicy(retry_budget_min_retries=1.5), "retry_budget_min_retries"),
        (lambda: RetryPolicy(retry_budget_window=0), "retry_budget_window"),
        (lambda: RetryPolicy(retry_budget_window=math.nan), "retry_budget_window"),
    ],
)
def test_invalid_values_raise_naming_the_field(factory: object, message: str) -> None:
    """Each out-of-range value raises a ConfigurationError naming the field and its range."""
    with pytest.raises(ConfigurationError, match=message):
        factory()  # type: ignore[operator]


@pytest.mark.parametrize(
    "factory",
    [
        lambda: BreakerPolicy(sliding_window_size=200),
        lambda: BreakerPolicy(sliding_window_size=10),
        lambda: BreakerPolicy(minimum_number_of_calls=10),
        lambda: BreakerPolicy(sliding_window_type="time_based"),
        lambda: BreakerPolicy(slow_call_rate_threshold=50),
    ],
)
def test_window_settings_without_a_rule_raise(factory: object) -> None:
    """Window settings that no rule would read are an error, not silently ignored."""
    with pytest.raises(ConfigurationError, match="no rule reads the sliding window"):
        factory()  # type: ignore[operator]


@pytest.mark.parametrize(
    "factory",
    [
        lambda: RetryPolicy(retry_budget_min_retries=10),
        lambda: RetryPolicy(retry_budget_window=30),
    ],
)
def test_budget_settings_without_a_percentage_raise(factory: object) -> None:
    """A retry budget's minimum or window without its percentage is an error, not ignored."""
    with pytest.raises(ConfigurationError, match="but no retry_budget_percent"):
        factory()  # type: ignore[operator]


def test_time_based_window_may_be_shorter_than_the_minimum_calls() -> None:
    """A time-based window counts seconds, so it may need more calls than its size."""
    policy = BreakerPolicy(
        failure_rate_threshold=50, sliding_window_type="time_based", sliding_window_size=10
    )
    assert (policy.minimum_number_of_calls, policy.sliding_window_size) == (100, 10)


def test_defaults_keep_the_consecutive_rule_and_a_fixed_open_time() -> None:
    """By default nothing new is on: no window, no budget, a fixed 60 s open time."""
    policy, retry = BreakerPolicy(), RetryPolicy()
    assert not policy.windowed
    assert (policy.panic_threshold, retry.retry_budget_percent) == (None, None)
    assert [policy.open_time(n, 0.99) for n in (1, 2, 10)] == [60.0, 60.0, 60.0]


def test_open_time_grows_per_opening_up_to_the_cap() -> None:
    """recovery_timeout x n, capped at max_recovery_timeout (Envoy's ejection time)."""
    policy = BreakerPolicy(recovery_timeout=10, max_recovery_timeout=35)
    assert [policy.open_time(n, 0.0) for n in range(1, 7)] == [10, 20, 30, 35, 35, 35]


@given(
    st.integers(min_value=1, max_value=10_000),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.floats(min_value=0.001, max_value=100),
    st.floats(min_value=1, max_value=50),
    st.floats(min_value=0, max_value=30),
)
def test_open_time_with_jitter_stays_within_bounds(
    ejections: int, fraction: float, base: float, growth: float, jitter: float
) -> None:
    """Every open time lies in [base, cap + jitter] and never shrinks as openings repeat."""
    cap = base * growth
    policy = BreakerPolicy(recovery_timeout=base, max_recovery_timeout=cap, recovery_jitter=jitter)
    wait = policy.open_time(ejections, fraction)
    assert base <= wait <= cap + jitter
    assert policy.open_time(ejections + 1, fraction) >= wait
