"""Finish reasons nobody recognises are not mistaken for complete answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reliable_llm import ServerError
from reliable_llm.testing.fake_server import FakeLLMServer, Reply
from tests.providers.conftest import ManagerFactory, Target, ask


@pytest.mark.parametrize(("kind", "finish"), [("openai", "garbage"), ("anthropic", "pause_turn")])
async def test_an_unrecognised_finish_is_returned_as_sent_and_never_cached(
    kind: str,
    finish: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A JSON answer ending with an unknown finish reason keeps it, and is not cached."""
    made = target(kind)
    server.set_default(made.scripted_as, Reply("partial answer", finish_reason=finish))
    manager = make_manager(made.provider, caching=True)
    first = await ask(manager, "sync")
    assert (first.text, first.finish_reason, first.model) == ("partial answer", finish, "primary")
    again = await ask(manager, "sync")
    assert not again.cached
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("kind", "finish"),
    [("openai", "insufficient_system_resource"), ("deepseek", "insufficient_system_resource")],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_answer_cut_short_by_the_server_falls_back(
    kind: str,
    finish: str,
    mode: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """DeepSeek's insufficient_system_resource is an upstream failure: the backup answers.

    (Streamed, the text before it has reached the caller: StreamInterruptedError, as for any
    stream that fails mid-answer.)
    """
    made = target(kind)
    server.set_default(made.scripted_as, Reply("cut sh", finish_reason=finish))
    manager = make_manager(made.provider, max_retries=0)
    response = await ask(manager, mode)
    assert response.model == "backup"
    assert isinstance(response.attempts[0].error, ServerError)
