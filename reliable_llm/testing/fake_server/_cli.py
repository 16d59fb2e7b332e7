"""``reliable-llm fake-server``: run the fake server in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from ._server import FakeLLMServer
from ._steps import Reply


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve a fake OpenAI / Azure OpenAI / Anthropic API for offline tests and demos. "
            "Prints the base URL on the first line of stdout."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind; 0 picks a free one (default)"
    )
    parser.add_argument(
        "--reply", default="ok", help="text every model answers (default: %(default)s)"
    )
    return parser


def run_fake_server_cli(
    argv: Sequence[str] | None = None, *, prog: str = "reliable-llm fake-server"
) -> int:
    """Run ``reliable-llm fake-server [--host H] [--port N] [--reply TEXT]``.

    Prints the base URL (then the per-SDK URLs on stderr) and serves until interrupted by
    Ctrl-C (SIGINT) or SIGTERM.

    Args:
        argv: Arguments, optionally starting with the ``fake-server`` sub-command name;
            ``None`` reads ``sys.argv[1:]``.
        prog: The command's name in usage and error messages.

    Returns:
        The exit status: 0 after a clean stop, 2 for bad arguments.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["fake-server"]:
        args = args[1:]
    try:
        options = _parser(prog).parse_args(args)
    except SystemExit as exc:  # argparse exits on --help and on errors
        return exc.code if isinstance(exc.code, int) else 2
    stopped = threading.Event()
    restore = _stop_on_sigterm(stopped)
    try:
        with FakeLLMServer(options.host, options.port) as server:
            server.set_default(None, Reply(options.reply))
            print(server.base_url, flush=True)
            print(
                f"  OpenAI base_url:    {server.openai_base_url}\n"
                f"  Anthropic base_url: {server.anthropic_base_url}\n"
                f"  Azure endpoint:     {server.azure_endpoint}\n"
                "Press Ctrl-C to stop.",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop
                stopped.wait()
    finally:
        restore()
    return 0


def _stop_on_sigterm(stopped: threading.Event) -> Callable[[], None]:
    """Make SIGTERM set ``stopped`` (main thread only); return a function undoing that."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handle(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, handle)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore
