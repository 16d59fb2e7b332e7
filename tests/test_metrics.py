"""Metrics: the documented dict, model info, hooks and log lines."""

from __future__ import annotations

import asyncio

import pytest
from drivers import Ask

from reliable_llm import AllModelsFailedError, LLMManager, RateLimitError, ServerError
from reliable_llm.events import (
    AttemptFinished,
    CacheHit,
    CacheMiss,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


def test_metrics_dict_after_a_fallback_and_a_cache_hit(manager: LLMManager, ask: Ask) -> None:
    """get_metrics() reports totals, retries, fallbacks by pair and reason, cache and tokens."""
    manager.register_model("primary", ScriptedModel(default=ServerError("down")))
    manager.register_model("backup", ScriptedModel(default="two words"))
    manager.set_fallback_chain(["backup"])
    ask("hello there")
    ask("hello there")
    m = manager.get_metrics()
    assert (m["total_requests"], m["successful_requests"], m["failed_requests"]) == (2, 2, 0)
    assert m["success_rate"] == 1.0
    assert m["retries"] == 3
    assert m["fallbacks"] == {
        "total": 1,
        "by_pair": {"primary->backup": 1},
        "by_reason": {"retries_exhausted": 1},
    }
    assert (m["cache"]["hits"], m["cache"]["misses"], m["cache"]["size"]) == (1, 1, 1)
    assert m["tokens"] == {"input": 2, "output": 2, "total": 4}
    assert m["models"]["primary"]["failure_count"] == 4
    assert m["models"]["backup"]["requests_served"] == 1
    assert (m["active_model"], m["fallback_chain"]) == ("primary", ["backup"])


def test_model_info_has_seed_fields(manager: LLMManager, clock: FakeClock) -> None:
    """get_model_info() gives metadata, breaker, counts, latency average and p95, last use."""
    model = ScriptedModel(
        [RateLimitError("slow")] + [Reply("ok", latency=t) for t in (0.1, 0.2, 0.3, 0.4)],
        clock=clock,
    )
    manager.register_model("m", model, {"context_window": 8192})
    for i in range(4):
        manager.generate(f"q{i}")
    info = manager.get_model_info("m")
    assert info["metadata"] == {"context_window": 8192}
    assert (info["success_count"], info["failure_count"]) == (4, 1)
    assert info["avg_latency"] == pytest.approx(0.25)
    assert info["p95_latency"] == pytest.approx(0.4)
    assert info["last_error_type"] == "RateLimitError"
    assert info["last_used"] is not None
    assert info["breaker"]["state"] == "closed"
    assert info["is_active"] is True


def test_events_reach_hooks_in_order(manager: LLMManager) -> None:
    """Hooks see cache miss, attempts, retry, fallback and the finished request, in order."""
    events: list[Event] = []
    manager.add_hook(events.append)
    manager.register_model(
        "a", ScriptedModel([ServerError("x"), ServerError("y"), ServerError("z"), ServerError("w")])
    )
    manager.register_model("b", ScriptedModel(default="ok"))
    manager.set_fallback_chain(["b"])
    manager.generate("hi")
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "CacheMiss",
        "Attempt",
        "RetryScheduled",
        "Attempt",
        "RetryScheduled",
        "Attempt",
        "RetryScheduled",
        "Attempt",
        "FallbackTaken",
        "Attempt",
        "RequestFinished",
    ]
    assert isinstance(events[0], CacheMiss)
    assert [e.delay for e in events if isinstance(e, RetryScheduled)] == [1.0, 2.0, 4.0]
    fallback = next(e for e in events if isinstance(e, FallbackTaken))
    assert (fallback.from_model, fallback.to_model) == ("a", "b")
    finished = events[-1]
    assert isinstance(finished, RequestFinished) and finished.model == "b"
    manager.remove_hook(events.append)
    manager.generate("hi")
    assert len(events) == 11


def test_a_failing_hook_does_not_fail_the_request(
    manager: LLMManager, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is logged, and the request still succeeds."""

    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    manager.add_hook(broken)
    manager.register_model("m", ScriptedModel(default="fine"))
    assert manager.generate("hi") == "fine"
    assert "event hook" in caplog.text and "hook bug" in caplog.text


def test_failed_request_is_counted(manager: LLMManager) -> None:
    """A request that fails everywhere counts as failed, never as success."""
    manager.register_model("m", ScriptedModel(default=ServerError("down")))
    with pytest.raises(AllModelsFailedError):
        manager.generate("hi")
    m = manager.get_metrics()
    assert (m["total_requests"], m["failed_requests"], m["success_rate"]) == (1, 1, 0.0)


def test_retry_and_fallback_lines_are_logged(
    manager: LLMManager, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line per retry and per fallback."""
    manager.register_model("a", ScriptedModel([ServerError("x")] * 4))
    manager.register_model("b", ScriptedModel(default="ok"))
    manager.set_fallback_chain(["b"])
    with caplog.at_level("INFO", logger="reliable_llm"):
        manager.generate("hi")
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("retrying model 'a'") for m in messages) == 3
    assert sum("falling back to 'b'" in m for m in messages) == 1


def test_latency_percentiles_are_bounded(clock: FakeClock) -> None:
    """Latency windows keep a bounded number of samples however many requests run."""
    manager = LLMManager(clock=clock, enable_caching=False)
    manager.register_model("m", ScriptedModel(default=Reply("x", latency=0.001), clock=clock))

    async def many() -> None:
        for i in range(3000):
            await manager.agenerate(str(i))

    asyncio.run(many())
    assert len(manager.metrics._latencies) == 2048
    assert manager.get_metrics()["total_requests"] == 3000


def test_events_are_frozen() -> None:
    """Events cannot be altered by a hook."""
    event = AttemptFinished("m", 1, 0.1)
    assert event.error is None and event.number == 1
    with pytest.raises(AttributeError):
        event.model = "x"  # type: ignore[misc]
    assert CacheHit("m", "n") == CacheHit("m", "n")


def test_skips_of_an_open_breaker_are_events_to_the_next_model_of_each_route(
    clock: FakeClock,
) -> None:
    """Each request skipping an open model reports the model its own route tries next, and
    the metrics count each pair and the circuit_open reason."""
    from reliable_llm import BreakerPolicy

    manager = LLMManager(
        clock=clock,
        random=lambda: 0.0,
        enable_caching=False,
        max_retries=0,
        breaker=BreakerPolicy(1, recovery_timeout=1000),
    )
    manager.register_model("a", ScriptedModel(default=ServerError("down")))
    manager.register_model("b", ScriptedModel(default="from b"))
    manager.register_model("c", ScriptedModel(default="from c"))
    manager.set_fallback_chain(["b"])
    manager.generate("trip")  # a fails once and opens; b answers
    events: list[Event] = []
    manager.add_hook(events.append)
    assert manager.generate("one") == "from b"
    assert manager.generate("two", fallback_chain=["c"]) == "from c"
    assert manager.generate("three") == "from b"
    with pytest.raises(AllModelsFailedError):
        manager.generate("four", fallback_chain=[])
    skips = [(e.from_model, e.to_model, e.reason) for e in events if isinstance(e, FallbackTaken)]
    assert skips == [
        ("a", "b", "circuit_open"),
        ("a", "c", "circuit_open"),
        ("a", "b", "circuit_open"),
        ("a", None, "circuit_open"),
    ]
    assert manager.get_metrics()["fallbacks"] == {  # with the trip's own fallback
        "total": 5,
        "by_pair": {"a->(none)": 1, "a->b": 3, "a->c": 1},
        "by_reason": {"circuit_open": 4, "circuit_opened": 1},
    }
