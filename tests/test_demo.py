"""The narrated demo runs through the public story end to end."""

from __future__ import annotations

import pytest

from reliable_llm.demo import run_demo
from reliable_llm.testing import FakeClock


def test_demo_tells_the_whole_story(capsys: pytest.CaptureFixture[str]) -> None:
    """Retries, breaker opening, fallback, a cache hit and half-open recovery all appear."""
    run_demo(FakeClock())
    out = capsys.readouterr().out
    assert "retry   gpt-4o: RateLimitError, backing off 200 ms" in out
    assert "breaker gpt-4o: closed -> open" in out
    assert "gpt-4o upstream calls during this request: 0" in out
    assert "via cache" in out
    assert "breaker gpt-4o: half-open -> closed" in out
    assert "-> 'gpt-4o' answered" in out
    assert "gpt-4o->claude-sonnet: 3" in out
