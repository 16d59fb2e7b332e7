"""The retry budget: retries per model capped at a share of its recent requests (Envoy's 20%)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from drivers import Ask

from reliable_llm import (
    AllModelsFailedError,
    AuthenticationError,
    BreakerPolicy,
    FailureReason,
    LLMManager,
    RetryPolicy,
    ServerError,
)
from reliable_llm._decisions import next_step
from reliable_llm._retry_budget import RetryBudget
from reliable_llm.testing import FakeClock, ScriptedModel

BUDGET = RetryPolicy(max_retries=3, retry_budget_percent=20, retry_budget_min_retries=3)
NEVER_OPENS = BreakerPolicy(failure_threshold=10**6)  # the budget alone, no breaker help


def _outage(manager: LLMManager, clock: FakeClock, policy: RetryPolicy) -> ScriptedModel:
    """A primary that is down, a healthy backup, and 100 requests over 10 s."""
    primary = ScriptedModel(default=ServerError("503 from upstream"))
    manager.register_model("primary", primary, retry=policy, breaker=NEVER_OPENS)
    manager.register_model("backup", ScriptedModel(default="backup answers"))
    manager.set_fallback_chain(["backup"])
    for n in range(100):
        assert manager.generate(f"q{n}", use_cache=False) == "backup answers"
        clock.advance(0.1)
    return primary


def test_without_a_budget_an_outage_triples_the_load(manager: LLMManager, clock: FakeClock) -> None:
    """No budget (the default): every request makes 4 calls to the dead primary."""
    primary = _outage(manager, clock, RetryPolicy(max_retries=3, initial_delay=0))
    assert len(primary.calls) == 400


def test_budget_caps_retries_during_an_outage(manager: LLMManager, clock: FakeClock) -> None:
    """With a 20% budget over a 10 s window, 100 requests make at most 20 retries, not 300."""
    primary = _outage(manager, clock, BUDGET)
    retries = len(primary.calls) - 100
    assert 3 <= retries <= 20
    metrics = manager.get_metrics()
    assert metrics["models"]["primary"]["retries"] == retries
    assert metrics["fallbacks"]["by_reason"][FailureReason.RETRY_BUDGET_EXHAUSTED.value] > 0
    budget = manager.get_model_info("primary")["retry_budget"]
    assert budget["retries"] <= budget["allowed"] == budget["requests"] * 20 // 100


def test_exhausted_budget_is_the_reason_in_the_error(ask: Ask, manager: LLMManager) -> None:
    """Once the budget is spent, the model is given up with reason retry_budget_exhausted."""
    policy = RetryPolicy(max_retries=3, retry_budget_percent=20, retry_budget_min_retries=1)
    manager.register_model("m", ScriptedModel(default=ServerError("down")), retry=policy)
    with pytest.raises(AllModelsFailedError) as caught:
        ask("first", use_cache=False)
    failure = caught.value.failures[0]
    assert (failure.reason, len(failure.errors)) == (FailureReason.RETRY_BUDGET_EXHAUSTED, 2)
    assert "retry_budget_exhausted after 2 attempt(s)" in str(caught.value)


def test_low_traffic_can_still_retry(manager: LLMManager, clock: FakeClock) -> None:
    """A lone request gets its three retries: the minimum holds however few requests there are."""
    model = ScriptedModel([ServerError("a"), ServerError("b"), ServerError("c")], default="ok")
    manager.register_model("m", model, retry=BUDGET)
    assert manager.generate("q") == "ok"
    assert len(model.calls) == 4


def test_budget_refills_as_its_window_slides(manager: LLMManager, clock: FakeClock) -> None:
    """Retries spent 11 s ago no longer count: a new request may retry again."""
    model = ScriptedModel(default=ServerError("down"))
    policy = RetryPolicy(max_retries=5, retry_budget_percent=20, retry_budget_min_retries=2)
    manager.register_model("m", model, retry=policy, breaker=NEVER_OPENS)
    with pytest.raises(AllModelsFailedError):
        manager.generate("q1", use_cache=False)
    assert len(model.calls) == 3  # two retries, then the budget is spent
    clock.advance(11)
    with pytest.raises(AllModelsFailedError):
        manager.generate("q2", use_cache=False)
    assert len(model.calls) == 6


def test_budget_is_asked_last(clock: FakeClock) -> None:
    """A non-retryable error or a retry that does not fit spends nothing from the budget."""
    budget = RetryBudget(20, 1, 10, clock)
    assert next_step(BUDGET, 1, AuthenticationError("key"), 60, True, 0.0, 0.0, False, budget) is (
        FailureReason.NON_RETRYABLE
    )
    assert next_step(BUDGET, 1, ServerError("x"), 0.5, True, 0.0, 0.0, False, budget) is (
        FailureReason.BACKOFF_EXCEEDS_DEADLINE
    )
    assert next_step(BUDGET, 1, ServerError("x"), 60, True, 0.0, 0.0, False, budget) == 1.0
    assert next_step(BUDGET, 2, ServerError("x"), 60, True, 0.0, 0.0, False, budget) is (
        FailureReason.RETRY_BUDGET_EXHAUSTED
    )


def test_concurrent_retries_cannot_overdraw_the_budget(clock: FakeClock) -> None:
    """8 threads asking 100 times each for a budget of 5 get exactly 5 retries between them."""
    budget = RetryBudget(20, 5, 10, clock)
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        mine = [budget.try_spend() for _ in range(100)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 5


def test_model_info_without_a_budget(manager: LLMManager) -> None:
    """get_model_info says None when a model has no retry budget."""
    manager.register_model("m", ScriptedModel())
    assert manager.get_model_info("m")["retry_budget"] is None


def test_budget_holds_under_500_concurrent_tasks(clock: FakeClock) -> None:
    """500 concurrent requests to a dead primary: at most 20% of them retry, all are served."""
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    primary = ScriptedModel(default=ServerError("503 from upstream"))
    policy = RetryPolicy(max_retries=3, initial_delay=0, retry_budget_percent=20)
    manager.register_model("primary", primary, retry=policy, breaker=NEVER_OPENS)
    manager.register_model("backup", ScriptedModel(default="backup answers"))
    manager.set_fallback_chain(["backup"])

    async def main() -> list[str]:
        return list(await asyncio.gather(*(manager.agenerate(f"q{n}") for n in range(500))))

    assert asyncio.run(main()) == ["backup answers"] * 500
    retries = len(primary.calls) - 500
    assert 3 <= retries <= 100
    assert manager.get_metrics()["models"]["primary"]["retries"] == retries
