"""The adapters' offline README examples run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

INTEGRATIONS = Path(__file__).parent.parent


def _snippet(readme: str, marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (INTEGRATIONS / readme).read_text(), re.S)
    return next(block for block in blocks if marker in block)


@pytest.mark.parametrize(
    ("readme", "last", "expected"),
    [
        ("langchain/README.md", 'model.invoke("Hello").content', "Bonjour !"),
        ("llama-index/README.md", 'llm.complete("Hello").text', "user: Hello\nassistant: "),
    ],
)
def test_the_vouching_framework_model_example_runs(readme: str, last: str, expected: str) -> None:
    """The enforces_timeout example answers offline with the wrapped fake's reply."""
    code = _snippet(readme, "enforces_timeout=True")
    namespace: dict[str, Any] = {}
    exec(compile(code, readme, "exec"), namespace)
    answer = eval(last, namespace)
    assert answer == expected


@pytest.mark.parametrize(
    ("readme", "expected"),
    [
        ("langchain/README.md", ["A single pixel.", "['text-only']", "text-only skipped input"]),
        ("llama-index/README.md", ["False", "A single pixel.", "['text-only']"]),
    ],
)
def test_the_content_example_runs(
    readme: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An image skips the text-only model; the answer and the skip are reported."""
    code = _snippet(readme, 'ScriptedModel(default="A single pixel.")')
    exec(compile(code, readme, "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected
