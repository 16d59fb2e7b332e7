"""An empty 200 answer is not an answer, but it is not an outage either."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reliable_llm import EmptyResponseError
from reliable_llm.testing.fake_server import FakeLLMServer, Reply
from tests.providers.conftest import KINDS, MODES, ManagerFactory, Target, ask


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_an_empty_answer_falls_back_without_blaming_the_breaker(
    kind: str,
    mode: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """Text "" with no tool calls: not retried, not cached, breaker untouched, backup answers."""
    made = target(kind)
    server.set_default(made.scripted_as, Reply(""))
    manager = make_manager(made.provider, max_retries=2, caching=True)
    for _ in range(6):  # more than the breaker's threshold
        response = await ask(manager, mode)
        assert (response.model, response.text) == ("backup", "fallback answer")
        assert isinstance(response.attempts[0].error, EmptyResponseError)
        assert len(response.attempts) == 2  # no retry of the empty answer
        manager.clear_cache()
    breaker = manager.get_model_info("primary")["breaker"]
    assert (breaker["state"], breaker["failure_count"]) == ("closed", 0)
