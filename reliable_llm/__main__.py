"""Command line: ``reliable-llm demo`` and ``reliable-llm fake-server --port N``."""

from __future__ import annotations

import sys

USAGE = """usage: reliable-llm COMMAND

commands:
  demo          narrate an outage: retries, breaker, fallback, cache, recovery (offline)
  fake-server   serve the OpenAI/Anthropic-compatible fake LLM server (see --help)
"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "demo":
        from reliable_llm.demo import run_demo

        run_demo()
        return 0
    if command == "fake-server":
        from reliable_llm.testing.fake_server import run_fake_server_cli

        return run_fake_server_cli(["fake-server", *rest])
    print(f"reliable-llm: unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
