"""A Redis that answers too slowly is an unavailable Redis: requests go on, within a bound.

`CLIENT PAUSE` holds every command of every client on a real redis-server for 1.5 s, as a
Redis stalled by a slow command, a fork or a failover would. These tests use the default
``timeout`` on purpose and time requests on the real clock: the bound is the point. The
probe schedule runs on the manager's fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from reliable_llm import LLMManager
from reliable_llm.backends import RedisState
from reliable_llm.events import SharedStateDegraded, SharedStateRecovered
from reliable_llm.testing import FakeClock

PAUSE = 1.5  # seconds Redis holds every command: twice the bound below
BOUND = 0.75  # seconds five requests may take in all while Redis is paused


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: pausing it stalls nobody else."""
    own = RedisServer(tmp_path)
    own.start()
    try:
        yield own
    finally:
        own.kill()


class Paused:
    """``with Paused(url):`` Redis holds every client's commands for PAUSE seconds; the block
    ends when it answers again (Redis 6.2 holds even ``CLIENT UNPAUSE`` until then)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=10 * PAUSE)

    def __enter__(self) -> None:
        self.client.execute_command("CLIENT", "PAUSE", int(PAUSE * 1000), "ALL")

    def __exit__(self, *exc: object) -> None:
        self.client.ping()  # answered when the pause is over
        self.client.close()


def fleet_manager(url: str, clock: FakeClock) -> tuple[LLMManager, list[Any], list[str]]:
    """A manager on a RedisState with the default timeout: primary, then backup."""
    events: list[Any] = []
    calls: list[str] = []

    def primary(prompt: str, **kwargs: object) -> str:
        calls.append(prompt)
        return f"answer to {prompt}"

    manager = LLMManager(
        max_retries=0,
        clock=clock,
        hooks=[events.append],
        shared_state=RedisState(url, namespace="slow"),
    )
    manager.register_model("primary", primary)
    return manager, events, calls


def outage_events(events: list[Any]) -> list[type]:
    return [type(e) for e in events if isinstance(e, SharedStateDegraded | SharedStateRecovered)]


def test_the_default_bound_on_a_redis_call_is_a_few_milliseconds() -> None:
    """RedisState's default timeout is 10 ms: a stalled Redis costs a request that much."""
    assert RedisState("redis://127.0.0.1:1/0").timeout == 0.01


def test_a_paused_redis_is_unavailable_and_requests_go_on_in_bounded_time(
    server: RedisServer,
) -> None:
    """Redis holds its replies for 1.5 s: five requests are answered in-process within 0.75 s
    in all, one outage is reported, and sharing resumes once Redis answers again."""
    clock = FakeClock()
    manager, events, calls = fleet_manager(server.url, clock)
    assert manager.generate("warm") == "answer to warm"  # connected, shared
    assert manager.shared_state.available
    with Paused(server.url):
        started = time.monotonic()
        for n in range(5):
            assert manager.generate(f"q{n}") == f"answer to q{n}"
        elapsed = time.monotonic() - started
        assert elapsed < BOUND, f"{elapsed:.3f}s while Redis was paused"
        assert not manager.shared_state.available
    assert calls == ["warm"] + [f"q{n}" for n in range(5)]
    clock.advance(0.6)  # the first probe is due 0.5 s after the outage began
    assert manager.generate("after") == "answer to after"
    assert manager.shared_state.available
    assert outage_events(events) == [SharedStateDegraded, SharedStateRecovered]
    # Shared again: the answer is in Redis for the other processes.
    keys = redis.Redis.from_url(server.url).keys("slow:cache:*")
    assert len(keys) >= 1


async def test_a_paused_redis_is_unavailable_to_the_async_path_too(server: RedisServer) -> None:
    """agenerate while Redis holds its replies (the asyncio client): five requests answered
    within 0.75 s in all, one outage reported."""
    clock = FakeClock()
    manager, events, _ = fleet_manager(server.url, clock)
    try:
        assert await manager.agenerate("warm") == "answer to warm"
        with Paused(server.url):
            started = time.monotonic()
            for n in range(5):
                assert await manager.agenerate(f"q{n}") == f"answer to q{n}"
            elapsed = time.monotonic() - started
            assert elapsed < BOUND, f"{elapsed:.3f}s while Redis was paused"
            assert not manager.shared_state.available
        assert outage_events(events) == [SharedStateDegraded]
    finally:
        await manager.aclose()
