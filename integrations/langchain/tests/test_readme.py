"""The package README's content example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def test_readme_content_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """An image block skips the text-only model; the answer and the skip are reported."""
    text = README.read_text()
    section = text[text.index("## Images, audio, documents and reasoning") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "A single pixel.",
        "['text-only']",
        "text-only skipped input",
    ]
