"""Streamed answers report the model id the provider answered with, as complete ones do."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reliable_llm import LLMManager, StreamAccumulator
from reliable_llm.testing import FakeClock
from tests.providers.conftest import KINDS, Target


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_reports_provider_model(
    kind: str, target: Callable[..., Target], clock: FakeClock
) -> None:
    """The last chunk names the provider's model; the cached replay keeps it."""
    built = target(kind)
    manager = LLMManager(clock=clock)
    manager.register_model("m", built.provider)
    acc = StreamAccumulator()
    async for chunk in manager.astream("hi"):
        acc.add(chunk)
    assert acc.provider_model == built.scripted_as
    assert manager.chat("hi").provider_model == built.scripted_as
    complete = await manager.achat("hi", use_cache=False)
    assert complete.provider_model == built.scripted_as
