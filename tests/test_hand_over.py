"""Hand over instead of waiting: RetryPolicy(hand_over=True), through all four drivers."""

from __future__ import annotations

import time

import pytest
from drivers import Ask

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    ConfigurationError,
    FailureReason,
    LLMManager,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from reliable_llm.testing import FakeClock, ScriptedModel

HAND_OVER = RetryPolicy(hand_over=True)


def _dead_primary(
    manager: LLMManager, retry: RetryPolicy | None
) -> tuple[ScriptedModel, ScriptedModel]:
    primary = ScriptedModel(default=ServerError("503 from upstream", status_code=503))
    backup = ScriptedModel(default="from backup")
    manager.register_model("primary", primary, retry=retry)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    return primary, backup


def _trip(manager: LLMManager, name: str) -> None:
    """Open ``name``'s breaker (threshold 1) with one failed request to it alone."""
    with pytest.raises(AllModelsFailedError):
        manager.chat("trip", model=name, fallback_chain=[], use_cache=False)
    assert manager.get_model_info(name)["breaker"]["state"] == "open"


def test_a_dead_primary_hands_over_at_once(manager: LLMManager, clock: FakeClock, ask: Ask) -> None:
    """With hand_over, the first request after the primary dies is answered by the fallback
    at fake time 0: one call to the primary, no backoff sleep."""
    primary, backup = _dead_primary(manager, HAND_OVER)
    response = ask("hi")
    assert (response.model, response.text) == ("backup", "from backup")
    assert clock.monotonic() == 0.0
    assert clock.sleeps == []
    assert (primary.call_count, backup.call_count) == (1, 1)
    assert response.fallback_from == ("primary",)
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {"handed_over": 1}
    assert manager.get_metrics()["retries"] == 0


def test_without_hand_over_the_primary_backs_off_first(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """Default behaviour is unchanged: three retries at 1, 2 and 4 s (7 s) before the fallback."""
    primary, backup = _dead_primary(manager, None)
    response = ask("hi")
    assert response.model == "backup"
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.monotonic() == 7.0
    assert (primary.call_count, backup.call_count) == (4, 1)
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {"retries_exhausted": 1}


def test_the_last_model_standing_keeps_its_backoff(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """With the fallback's breaker open, a hand-over model retries with backoff and recovers."""
    primary = ScriptedModel([RateLimitError("429"), RateLimitError("429"), "recovered"])
    backup = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", primary, retry=HAND_OVER)
    manager.register_model("backup", backup, breaker=BreakerPolicy(failure_threshold=1))
    manager.set_fallback_chain(["backup"])
    _trip(manager, "backup")
    clock.sleeps.clear()
    response = ask("hi")
    assert (response.model, response.text) == ("primary", "recovered")
    assert clock.sleeps == [1.0, 2.0]
    assert backup.call_count == 1  # only the call that tripped it


def test_the_fallback_backs_off_when_it_is_last(
    manager: LLMManager, clock: FakeClock, ask: Ask
) -> None:
    """Both down: the primary hands over at once, the last model retries 1, 2, 4 s, and the
    error names both reasons in route order."""
    manager.register_model("primary", ScriptedModel(default=ServerError("a")), retry=HAND_OVER)
    manager.register_model("backup", ScriptedModel(default=ServerError("b")), retry=HAND_OVER)
    manager.set_fallback_chain(["backup"])
    with pytest.raises(AllModelsFailedError) as caught:
        ask("hi")
    reasons = [(f.model, f.reason) for f in caught.value.failures]
    assert reasons == [
        ("primary", FailureReason.HANDED_OVER),
        ("backup", FailureReason.RETRIES_EXHAUSTED),
    ]
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert "primary: handed_over after 1 attempt(s)" in str(caught.value)


def test_a_healthy_model_later_in_the_route_is_enough(
    manager: LLMManager, clock: FakeClock
) -> None:
    """A healthy model anywhere later in the route is enough: the open one is skipped."""
    manager.register_model("a", ScriptedModel(default=ServerError("a")), retry=HAND_OVER)
    manager.register_model(
        "b", ScriptedModel(default=ServerError("b")), breaker=BreakerPolicy(failure_threshold=1)
    )
    manager.register_model("c", ScriptedModel(default="from c"))
    manager.set_fallback_chain(["b", "c"])
    _trip(manager, "b")
    clock.sleeps.clear()
    response = manager.chat("hi")
    assert response.model == "c"
    assert response.fallback_from == ("a", "b")
    assert clock.sleeps == []


def test_hand_over_must_be_a_bool() -> None:
    """A non-bool hand_over is a ConfigurationError naming the parameter."""
    with pytest.raises(ConfigurationError, match=r"RetryPolicy\.hand_over must be True or False"):
        RetryPolicy(hand_over="yes")  # type: ignore[arg-type]


def test_readme_routing_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's routing example hands over, validates and reports as it says."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Routing:") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    started = time.monotonic()
    exec(compile(code, "README.md", "exec"), {})
    assert time.monotonic() - started < 1.0  # handed over: no 1 s backoff on the real clock
    lines = capsys.readouterr().out.splitlines()
    assert lines == ['claude {"city": "Paris"}', "('gpt-4o',)", "{'handed_over': 1}"]
