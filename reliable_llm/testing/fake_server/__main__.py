"""``python -m reliable_llm.testing.fake_server``: run the fake LLM server."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._cli import run_fake_server_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake server command line; see `run_fake_server_cli`."""
    return run_fake_server_cli(argv, prog="python -m reliable_llm.testing.fake_server")


if __name__ == "__main__":
    sys.exit(main())
