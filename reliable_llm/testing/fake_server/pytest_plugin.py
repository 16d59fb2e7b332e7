"""A pytest fixture serving a fresh `FakeLLMServer` to each test.

Import the fixture into a ``conftest.py`` to use it::

    from reliable_llm.testing.fake_server.pytest_plugin import fake_llm_server
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeLLMServer

__all__ = ["fake_llm_server"]


@pytest.fixture
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """Yield a started `FakeLLMServer`; reset and stop it after the test."""
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.reset()
        server.stop()
