"""The chaos soak of issue 15 on a fake clock: three models, an upstream answering 71% of calls.

With the consecutive-failure default, 50 requests a second make runs of five failures common
enough that all three breakers are open at once for long stretches, and requests fail fast
although every model still answers most calls. Failure-rate breakers (a 29% failure rate is
below their 50% threshold) with a panic threshold keep the same route serving.
"""

from __future__ import annotations

import random

import pytest

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    FailureReason,
    LLMManager,
    RetryPolicy,
    ServerError,
)
from reliable_llm.testing import FakeClock, ScriptedModel

REQUESTS = 6000  # two minutes at 50 requests a second
GAP = 0.02  # seconds between requests
HEALTHY = 0.71  # share of calls the upstream answers


class Soak:
    """What a soak left behind: the shares of failed and failed-fast requests."""

    def __init__(self, policy: BreakerPolicy, seed: int = 7) -> None:
        clock = FakeClock()
        rng = random.Random(seed)
        manager = LLMManager(
            retry=RetryPolicy(max_retries=1),
            breaker=policy,
            enable_caching=False,
            clock=clock,
            random=rng.random,
        )
        for name in ("a", "b", "c"):
            script = [
                "ok" if rng.random() < HEALTHY else ServerError("503 from upstream")
                for _ in range(REQUESTS * 4)
            ]
            manager.register_model(name, ScriptedModel(script, clock=clock))
        manager.set_fallback_chain(["b", "c"])
        failed = failed_fast = 0
        for _ in range(REQUESTS):
            try:
                manager.chat("q", timeout=600)
            except AllModelsFailedError as exc:
                failed += 1
                if all(f.reason is FailureReason.CIRCUIT_OPEN for f in exc.failures):
                    failed_fast += 1
            clock.advance(GAP)
        self.failed = failed / REQUESTS
        self.failed_fast = failed_fast / REQUESTS
        self.manager = manager


@pytest.fixture(scope="module")
def default() -> Soak:
    """The soak with the consecutive-failure default (5 in a row open a breaker for 60 s)."""
    return Soak(BreakerPolicy())


def test_consecutive_failure_default_fails_fast_on_a_mostly_healthy_route(default: Soak) -> None:
    """The default breakers often open together: over 10% of requests fail fast (issue: 11.6%)."""
    assert default.failed_fast > 0.10


def test_failure_rate_and_panic_keep_a_70_percent_healthy_route_serving(default: Soak) -> None:
    """Failure-rate breakers with a panic threshold: under 0.5% of requests fail, none fast."""
    policy = BreakerPolicy(
        failure_rate_threshold=50,
        minimum_number_of_calls=20,
        sliding_window_size=50,
        panic_threshold=50,
    )
    soak = Soak(policy)
    assert soak.failed_fast == 0.0
    assert soak.failed < 0.005
    assert soak.failed < default.failed / 20
    assert soak.manager.get_model_info("a")["breaker"]["failure_rate"] < 50


def test_panic_threshold_alone_stops_the_default_failing_fast(default: Soak) -> None:
    """The default consecutive rule plus a 50% panic threshold: no request fails fast."""
    soak = Soak(BreakerPolicy(panic_threshold=50))
    assert soak.failed_fast == 0.0
    assert soak.failed < default.failed / 10
    panic_trials = [soak.manager.get_model_info(m)["breaker"]["panic_trials"] for m in "abc"]
    assert sum(panic_trials) > 0
