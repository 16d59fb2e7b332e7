"""An open window survives Redis losing it: opened alone during an outage, or forgotten by a
restarted Redis, it is written back to Redis when Redis answers again, never shortened.

Each test runs its own redis-server (tests/redis_server.py) so it can kill and restart it.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from reliable_llm import BreakerPolicy, LLMManager, ServerError
from reliable_llm.backends import RedisState
from reliable_llm.testing import FakeClock


class Counting:
    """A model that fails with a 500 while ``failing``, else answers its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.failing = False

    def __call__(self, prompt: str, **kwargs: Any) -> str:
        self.calls += 1
        if self.failing:
            raise ServerError("down", status_code=500)
        return self.name


def _manager(url: str, namespace: str, clock: FakeClock, primary: Counting) -> LLMManager:
    state = RedisState(url, namespace=namespace, timeout=0.5)
    manager = LLMManager(
        max_retries=0,
        enable_caching=False,
        clock=clock,
        shared_state=state,
        breaker=BreakerPolicy(failure_threshold=3, recovery_timeout=30.0),
    )
    manager.register_model("primary", primary)
    manager.register_model("backup", Counting("backup"))
    manager.set_fallback_chain(["backup"])
    return manager


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Any:
    own = RedisServer(tmp_path)
    own.start()
    yield own
    own.kill()


def _fleet_window(url: str, namespace: str) -> tuple[bytes | None, int]:
    """The fleet's breaker state of primary and the ms left of its open window."""
    client = redis.Redis.from_url(url)
    state, until = client.hmget(f"{namespace}:breaker:primary", "s", "u")
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    return state, int(until or 0) - now_ms


def test_a_window_opened_during_an_outage_is_written_back(
    server: RedisServer, namespace: str
) -> None:
    """Redis is killed; the primary fails 3 times and opens this process's breaker for 30 s;
    Redis comes back empty: the breaker stays open (the primary is not called) and the rest
    of its window is written to Redis, where another process sees it."""
    clock = FakeClock()
    primary = Counting("primary")
    manager = _manager(server.url, namespace, clock, primary)
    assert manager.generate("warm") == "primary"
    server.kill()
    primary.failing = True
    for _ in range(3):
        assert manager.generate("q") == "backup"
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"
    server.start()
    clock.advance(1.0)
    primary.failing = False  # it would answer, but the window has 29 s to run
    calls = primary.calls
    for _ in range(5):  # the first of these meets a Redis that forgot the window
        assert manager.generate("q") == "backup"
    assert primary.calls == calls
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"
    state, left_ms = _fleet_window(server.url, namespace)
    assert state == b"1" and 25_000 < left_ms <= 29_000
    other = _manager(server.url, namespace, FakeClock(), Counting("other primary"))
    assert other.generate("q") == "backup"  # the fleet keeps off the primary too


async def test_the_window_is_written_back_from_the_event_loop(
    server: RedisServer, namespace: str
) -> None:
    """The same under agenerate: the write-back travels as a task of the loop."""
    clock = FakeClock()
    primary = Counting("primary")
    manager = _manager(server.url, namespace, clock, primary)
    assert await manager.agenerate("warm") == "primary"
    server.kill()
    primary.failing = True
    for _ in range(3):
        assert await manager.agenerate("q") == "backup"
    server.start()
    clock.advance(1.0)
    primary.failing = False
    calls = primary.calls
    for _ in range(3):
        assert await manager.agenerate("q") == "backup"
    await manager.aclose()  # waits for the outcomes still on their way
    assert primary.calls == calls
    state, left_ms = _fleet_window(server.url, namespace)
    assert state == b"1" and 25_000 < left_ms <= 29_000
