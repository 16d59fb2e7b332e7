"""The README's first example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reliable_llm.testing import FakeClock

README = Path(__file__).parent.parent / "README.md"


def test_readme_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quick-start falls back, then serves the repeat from the cache."""
    monkeypatch.setattr("reliable_llm._manager.SystemClock", FakeClock)  # no real backoff sleeps
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    exec(compile(code, str(README), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Paris. (asked: Capital of France?)"
    assert lines[1] == "True"
    assert "'failure_count': 3" in lines[2]
    assert "'gpt-4o->claude': 1" in lines[3]


def test_readme_content_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The content-parts example skips the text-only model and the fake answers the image."""
    text = README.read_text()
    section = text[text.index("## Images, audio, documents and reasoning") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "A single pixel.",
        "('text-only',)",
        "skipped input",
    ]


def test_readme_fake_clock_bulkhead_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The testing section's bulkhead example times the queued call out on the fake clock."""
    text = README.read_text()
    section = text[text.index("## Testing your code") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["max_concurrent_calls", "first"]


def test_readme_lists_every_provider_preset() -> None:
    """Every preset appears in the README's provider table with its key variable."""
    from reliable_llm.providers import PRESETS

    text = README.read_text()
    for spec in PRESETS.values():
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `{spec.name}` |")), ""
        )
        assert row, spec.name
        assert (spec.api_key_env or "none (local)") in row
        assert (spec.base_url or "SDK default") in row
