"""An outage, narrated: run with ``python -m reliable_llm demo`` (offline, no keys).

The primary model rate-limits and then fails with 503s; the manager retries with backoff,
the primary's circuit breaker opens, the fallback answers, an identical request is a cache
hit, and once the recovery timeout passes the primary recovers through a half-open trial.
"""

from __future__ import annotations

from reliable_llm._breaker import BreakerState
from reliable_llm._clock import Clock, SystemClock
from reliable_llm._errors import RateLimitError, ServerError
from reliable_llm._events import BreakerTransition, Event, FallbackTaken, RetryScheduled
from reliable_llm._manager import LLMManager
from reliable_llm._policies import BreakerPolicy, RetryPolicy
from reliable_llm._render import metrics_table
from reliable_llm.testing import Reply, ScriptedModel

__all__ = ["run_demo"]

RECOVERY_SECONDS = 1.5


def _narrate(event: Event) -> None:
    if isinstance(event, RetryScheduled):
        print(f"    retry   {event.model}: {event.error}, backing off {event.delay * 1000:.0f} ms")
    elif isinstance(event, FallbackTaken):
        to = event.to_model or "(nothing left)"
        print(f"    fallback {event.from_model} -> {to} ({event.reason.value})")
    elif isinstance(event, BreakerTransition):
        print(f"    breaker {event.model}: {event.old.value} -> {event.new.value}")


def _ask(manager: LLMManager, prompt: str) -> None:
    started = manager.clock.monotonic()
    response = manager.chat(prompt)
    took = (manager.clock.monotonic() - started) * 1000
    source = "cache" if response.cached else f"{len(response.attempts)} upstream call(s)"
    print(f"  -> {response.model!r} answered in {took:.0f} ms via {source}: {response.text!r}")


def run_demo(clock: Clock | None = None) -> None:
    """Run the narrated outage scenario and print the final metrics table.

    Args:
        clock: Time source; the real clock by default (tests pass a fake one).
    """
    clock = clock or SystemClock()
    primary = ScriptedModel(
        [RateLimitError("rate limited", status_code=429, retry_after=0.2)],
        default=ServerError("service unavailable", status_code=503),
        name="openai",
        clock=clock,
    )
    fallback = ScriptedModel(
        default=Reply("The capital of France is Paris.", latency=0.03),
        name="anthropic",
        clock=clock,
    )
    manager = LLMManager(
        retry=RetryPolicy(max_retries=2, initial_delay=0.05, max_delay=0.5),
        breaker=BreakerPolicy(failure_threshold=5, recovery_timeout=RECOVERY_SECONDS),
        hooks=[_narrate],
        clock=clock,
    )
    manager.register_model("gpt-4o", primary, {"context_window": 128_000})
    manager.register_model("claude-sonnet", fallback, {"context_window": 200_000})
    manager.set_active_model("gpt-4o")
    manager.set_fallback_chain(["claude-sonnet"])

    print("1. The primary is rate-limited, then returns 503s: retries back off, then fall back.")
    _ask(manager, "What is the capital of France?")
    print("2. Still failing: the fifth consecutive failure opens gpt-4o's breaker.")
    _ask(manager, "Name the capital of France.")
    calls = primary.call_count
    print("3. Breaker open: gpt-4o is skipped without an upstream call.")
    _ask(manager, "France's capital city?")
    print(f"    gpt-4o upstream calls during this request: {primary.call_count - calls}")
    print("4. The same question again is served from the cache.")
    _ask(manager, "France's capital city?")
    print(f"5. gpt-4o recovers; after {RECOVERY_SECONDS} s the breaker lets one trial through.")
    primary.default = Reply("Paris.", latency=0.02)
    clock.sleep(RECOVERY_SECONDS)
    _ask(manager, "And the capital of Italy?")
    state = manager.get_model_info("gpt-4o")["breaker"]["state"]
    assert state == BreakerState.CLOSED.value, state
    print()
    print(metrics_table(manager.get_metrics()))


if __name__ == "__main__":
    run_demo()
