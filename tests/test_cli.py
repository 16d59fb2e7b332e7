"""The ``reliable-llm`` command line: help and version on every command, without side effects."""

from __future__ import annotations

import subprocess
import sys

import pytest

import reliable_llm
from reliable_llm.__main__ import main


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` prints the package version and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"reliable-llm {reliable_llm.__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["demo", "--help"], ["demo", "-h"]])
def test_help_describes_without_running_the_demo(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` on the program and on ``demo`` prints usage and runs no scenario."""
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: reliable-llm")
    assert "retry" not in out and "answered" not in out


def test_fake_server_help_does_not_serve(capsys: pytest.CaptureFixture[str]) -> None:
    """``fake-server --help`` prints the server's options and returns instead of serving."""
    assert main(["fake-server", "--help"]) == 0
    assert "--port" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["demo", "--bogus"]])
def test_bad_usage_exits_2_with_usage_on_stderr(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing or unknown command or option exits 2 and explains on stderr."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: reliable-llm" in captured.err


def test_module_entry_point_answers_version() -> None:
    """``python -m reliable_llm --version`` works as a real process."""
    done = subprocess.run(
        [sys.executable, "-m", "reliable_llm", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"reliable-llm {reliable_llm.__version__}")
