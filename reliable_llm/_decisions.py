"""Pure decisions shared by every driver: what to do after a failed attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reliable_llm._errors import FailureReason, ProviderError
from reliable_llm._policies import RetryPolicy

if TYPE_CHECKING:
    from reliable_llm._retry_budget import RetryBudget

__all__ = ["next_step"]


def next_step(
    policy: RetryPolicy,
    attempt: int,
    error: ProviderError,
    time_left: float,
    breaker_closed: bool,
    random_fraction: float,
    attempt_duration: float = 0.0,
    others_left: bool = False,
    budget: RetryBudget | None = None,
) -> float | FailureReason:
    """After attempt number ``attempt`` (1-based) failed: the delay before retrying, or why to stop.

    A retry is started only if its wait fits in the time left; while another model of the
    route could still use that time (``others_left``), the wait plus an attempt as long as the
    one that just failed must fit. A model that hung for its whole per-attempt timeout is
    then handed over at once instead of eating the time its fallbacks need.

    Args:
        policy: The model's retry policy.
        attempt: The attempt that just failed, counting from 1.
        error: Its classified error.
        time_left: Seconds left before the request's deadline.
        breaker_closed: Whether the model's breaker still admits ordinary calls.
        random_fraction: A random number in [0, 1) for jitter.
        attempt_duration: Seconds the failed attempt took.
        others_left: Whether a later model of the route may still be tried.
        budget: The model's retry budget, if its policy sets one. Asked last, once every
            other rule allows the retry; the one side effect of this function is that a
            retry it allows is counted against the budget (atomically, so concurrent
            requests cannot overdraw it).
    """
    if time_left <= 0:
        return FailureReason.DEADLINE_EXCEEDED
    if not error.retryable:
        return FailureReason.NON_RETRYABLE
    if not breaker_closed:
        return FailureReason.CIRCUIT_OPENED
    if attempt > policy.max_retries:
        return FailureReason.RETRIES_EXHAUSTED
    delay = policy.backoff(attempt - 1, random_fraction)
    hint = error.retry_after
    if hint is not None and hint > delay:
        if hint > policy.max_retry_after or hint >= time_left:
            return FailureReason.RETRY_AFTER_EXCEEDS_DEADLINE
        delay = float(hint)
    needed = delay + attempt_duration if others_left else delay
    if needed >= time_left:
        # The retry does not fit this request's time left: give this model up, not the
        # request; the next model may still answer in the time that remains.
        return FailureReason.BACKOFF_EXCEEDS_DEADLINE
    if budget and not budget.try_spend():
        return FailureReason.RETRY_BUDGET_EXHAUSTED
    return delay
