"""Command line: ``reliable-llm demo`` and ``reliable-llm fake-server --port N``.

``--help`` works on the program and on every subcommand, and ``--version`` prints the
installed version; neither runs anything.
"""

from __future__ import annotations

import argparse
import sys

from reliable_llm import __version__

_DEMO = "narrate an outage: retries, breaker, fallback, cache, recovery (offline, no keys)"
_FAKE_SERVER = "serve the OpenAI/Anthropic-compatible fake LLM server (see its --help)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reliable-llm",
        description="Dependable LLM calls: circuit breakers, retries, fallbacks, caching.",
    )
    parser.add_argument("--version", action="version", version=f"reliable-llm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("demo", help=_DEMO, description=_DEMO.capitalize() + ".")
    # The fake server parses its own options; only its name is declared here.
    commands.add_parser("fake-server", help=_FAKE_SERVER, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success (``--help`` and ``--version`` included), 2 for
        unknown commands or options.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["fake-server"]:
        from reliable_llm.testing.fake_server import run_fake_server_cli

        return run_fake_server_cli(args)
    try:
        options = _parser().parse_args(args)
    except SystemExit as exc:  # argparse exits after --help, --version and on errors
        return exc.code if isinstance(exc.code, int) else 2
    if options.command == "demo":
        from reliable_llm.demo import run_demo

        run_demo()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
