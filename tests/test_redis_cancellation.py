"""Cancellation is kept while a Redis call is on the wire.

redis-py's asyncio client may absorb a task's cancellation to keep its connection in step,
and hand back the reply instead; a request cancelled (or timed out by ``asyncio.timeout``)
during its admission must still end cancelled, without calling the model. Runs against the
real redis-server of the ``redis_url`` fixture, made slow with DEBUG SLEEP.
"""

from __future__ import annotations

import asyncio

import pytest
from redis_server import debug_sleep

from reliable_llm import LLMManager
from reliable_llm.backends import RedisState


class Counting:
    """An async model that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str, **kwargs: object) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        return "ok"


@pytest.mark.parametrize("use_cache", [False, True], ids=["admission", "begin"])
async def test_requests_cancelled_on_the_wire_end_cancelled(
    redis_url: str, namespace: str, use_cache: bool
) -> None:
    """40 requests cancelled while their first Redis call waits on a busy Redis: every one
    ends with CancelledError and the model is never called."""
    model = Counting()
    manager = LLMManager(shared_state=RedisState(redis_url, namespace=namespace, timeout=2.0))
    manager.register_model("m", model)
    assert await manager.agenerate("warm up", use_cache=use_cache) == "ok"
    sleeper = debug_sleep(redis_url, 0.3)
    tasks = [
        asyncio.create_task(manager.agenerate(f"q{i}", use_cache=use_cache)) for i in range(40)
    ]
    await asyncio.sleep(0.05)  # their round trips are on the wire
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(sleeper.join, 5)
    assert [type(o).__name__ for o in outcomes] == ["CancelledError"] * 40
    assert model.calls == 1  # the warm-up only
    await manager.aclose()


async def test_asyncio_timeout_is_never_lost_in_a_round_trip(
    redis_url: str, namespace: str
) -> None:
    """200 requests under an ``asyncio.timeout`` of 0 to 8 µs, which runs out while the
    admission's round trip is on the wire: each raises TimeoutError and the model is never
    called (redis-py absorbed these cancellations, and every request went on and answered)."""
    model = Counting()
    manager = LLMManager(
        shared_state=RedisState(redis_url, namespace=namespace, timeout=2.0),
        enable_caching=False,
    )
    manager.register_model("m", model)
    assert await manager.agenerate("warm up") == "ok"
    answered = 0
    for i in range(200):
        try:
            async with asyncio.timeout(0.000002 * (i % 5)):
                await manager.agenerate(f"q{i}")
            answered += 1
        except TimeoutError:
            pass
    assert (answered, model.calls) == (0, 1)  # the warm-up only
    await manager.aclose()
