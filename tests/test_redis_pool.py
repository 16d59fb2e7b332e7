"""RedisState's connection pool: a busy process is not a Redis outage.

Each process (and each event loop) keeps at most ``max_connections`` connections; a call that
finds them all in use for its whole timeout decides in-process, and nothing reports an
outage, because Redis answered the calls that had a connection. Runs against the real
redis-server of the ``redis_url`` fixture.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from reliable_llm import ConfigurationError, LLMManager
from reliable_llm.backends import RedisState
from reliable_llm.events import SharedStateDegraded
from reliable_llm.testing import FakeClock


def _manager(state: RedisState, events: list[Any]) -> LLMManager:
    manager = LLMManager(shared_state=state, hooks=[events.append], enable_caching=False)
    manager.register_model("m", lambda prompt, **kw: "ok " + prompt)
    return manager


def _checkout(pool: Any) -> Any:
    """Take a connection out of ``pool`` (redis-py 5.3+ takes no command name; older needs one)."""
    if "command_name" in inspect.signature(pool.get_connection).parameters:
        parameter = inspect.signature(pool.get_connection).parameters["command_name"]
        if parameter.default is inspect.Parameter.empty:
            return pool.get_connection("PING")
    return pool.get_connection()


def _evalsha(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def _degraded(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, SharedStateDegraded)]


def test_a_busy_pool_decides_locally_without_an_outage(redis_url: str, namespace: str) -> None:
    """With the only pooled connection in use, a request is served with in-process state
    after the bounded wait; no SharedStateDegraded, and Redis is used again once it frees."""
    state = RedisState(redis_url, namespace=namespace, timeout=0.05, max_connections=1)
    events: list[Any] = []
    manager = _manager(state, events)
    pool = state._link.client.connection_pool
    held = _checkout(pool)
    try:
        assert manager.generate("q") == "ok q"
        assert state.available and _degraded(events) == []
    finally:
        pool.release(held)
    before = _evalsha(redis_url)
    assert manager.generate("r") == "ok r" and state.available
    assert _evalsha(redis_url) > before  # the admission went to Redis again


async def test_a_busy_async_pool_decides_locally_without_an_outage(
    redis_url: str, namespace: str
) -> None:
    """The asyncio client's pool of the running loop: the same, without blocking the loop."""
    state = RedisState(redis_url, namespace=namespace, timeout=0.05, max_connections=1)
    events: list[Any] = []
    manager = _manager(state, events)
    assert await manager.agenerate("warm") == "ok warm"
    pool = state._link.aclient().connection_pool
    held = await _checkout(pool)
    try:
        assert await manager.agenerate("q") == "ok q"
        assert state.available and _degraded(events) == []
    finally:
        released = pool.release(held)
        if inspect.isawaitable(released):
            await released
    assert await manager.agenerate("r") == "ok r"
    await manager.aclose()


async def test_a_burst_of_tasks_shares_a_bounded_pool(redis_url: str, namespace: str) -> None:
    """300 concurrent agenerate calls on 4 connections: every call answered, no outage
    reported (an unbounded pool of redis-py 6+ raised 'Too many connections' past 100)."""
    state = RedisState(redis_url, namespace=namespace, timeout=2.0, max_connections=4)
    events: list[Any] = []
    manager = _manager(state, events)
    answers = await asyncio.gather(*(manager.agenerate(f"q{i}") for i in range(300)))
    assert answers == [f"ok q{i}" for i in range(300)]
    assert _degraded(events) == [] and state.available
    await manager.aclose()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"max_connections": 0}, "max_connections must be an int >= 1"),
        ({"max_connections": 2.5}, "max_connections must be an int >= 1"),
        ({"connect_timeout": 0}, "connect_timeout must be a positive number of seconds"),
    ],
)
def test_pool_options_are_checked(redis_url: str, option: dict[str, Any], message: str) -> None:
    """A bad pool size or connect timeout fails by name, with an example of a good value."""
    with pytest.raises(ConfigurationError, match=message):
        RedisState(redis_url, **option)


def test_ping_checks_the_server_and_its_credentials(redis_url: str, tmp_path: Any) -> None:
    """ping() returns the round trip in seconds; a wrong password or a port nobody serves
    fails by name with what to check, without the URL (its password) in the message."""
    assert 0 < RedisState(redis_url, timeout=0.5).ping() < 1.0  # not a slow-Redis test
    wrong = redis_url.replace("redis://", "redis://nobody:not-the-S3cret@")
    with pytest.raises(ConfigurationError, match="check the URL's host") as caught:
        RedisState(wrong).ping()
    assert "not-the-S3cret" not in str(caught.value)
    server = RedisServer(tmp_path)  # a free port nobody serves
    with pytest.raises(ConfigurationError, match="Redis did not answer PING"):
        RedisState(server.url).ping()


def test_timeouts_start_an_outage_only_three_in_a_row(redis_url: str, namespace: str) -> None:
    """Two timed-out calls with an answer between them are a busy process, not an outage;
    three in a row are (one SharedStateDegraded); a refused connection is one at once."""
    state = RedisState(redis_url, namespace=namespace)
    events: list[Any] = []
    state.attach(events.append, FakeClock())
    link = state._link
    for _ in range(3):
        link.failed(redis.TimeoutError("Timeout reading from socket"))
        link.failed(TimeoutError("timed out"))
        link.succeeded()  # another call of this process was answered
    assert state.available and _degraded(events) == []
    for _ in range(3):
        link.failed(redis.TimeoutError("Timeout reading from socket"))
    assert not state.available and len(_degraded(events)) == 1
    refused = RedisState(redis_url, namespace=namespace)
    refused._link.failed(redis.ConnectionError("Error 111 connecting: Connection refused."))
    assert not refused.available


_LOOPS = """
import asyncio, gc, sys
import redis
from reliable_llm import LLMManager
from reliable_llm.backends import RedisState

url, namespace = sys.argv[1], sys.argv[2]
manager = LLMManager(shared_state=RedisState(url, namespace=namespace, timeout=0.5))

async def model(prompt, **kwargs):
    return "ok"

manager.register_model("m", model)
clients = redis.Redis.from_url(url)
before = clients.info("clients")["connected_clients"]

async def job(n):
    await asyncio.gather(*(manager.agenerate(f"q{n}-{i}") for i in range(3)))

for n in range(30):
    asyncio.run(job(n))
gc.collect()
print(clients.info("clients")["connected_clients"] - before)
"""


def test_event_loops_closed_without_aclose_do_not_pile_up_connections(
    redis_url: str, namespace: str
) -> None:
    """One manager used from 30 short-lived loops (asyncio.run per job, as in Celery tasks),
    none closed with aclose(): Redis keeps the connections of one loop, not of all 30. (In a
    process of its own: the dropped loops' transports warn when collected.)"""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _LOOPS, redis_url, namespace],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    grown = int(done.stdout.strip())
    assert grown <= 4, f"{grown} more Redis clients after 30 loops"
