"""The ``fake-server`` command line: starts, prints its URL, serves, stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import openai
import pytest

from reliable_llm.testing.fake_server import run_fake_server_cli
from reliable_llm.testing.fake_server.__main__ import main


def test_cli_serves_until_interrupted() -> None:
    """The CLI prints the base URL, answers an SDK request, and exits 0 on SIGINT."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reliable_llm.testing.fake_server",
            "fake-server",
            "--port",
            "0",
            "--reply",
            "hello from the cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")

        with openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0) as client:
            completion = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert completion.choices[0].message.content == "hello from the cli"

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert "OpenAI base_url" in stderr


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-numeric --port makes the CLI return 2 with a usage message."""
    assert run_fake_server_cli(["fake-server", "--port", "eighty"]) == 2
    assert "invalid int value" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help returns 0 after printing usage naming the sub-command."""
    assert run_fake_server_cli(["fake-server", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: reliable-llm fake-server ")


def test_module_help_names_the_command_that_was_run(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m reliable_llm.testing.fake_server --help`` shows that command in its usage."""
    out = subprocess.run(
        [sys.executable, "-m", "reliable_llm.testing.fake_server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("usage: python -m reliable_llm.testing.fake_server ")
    assert main(["--help"]) == 0
    assert capsys.readouterr().out == out
