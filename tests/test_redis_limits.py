"""Deployment rate limits shared through RedisState, against a real redis-server.

Two managers on one namespace stand for two processes (they share nothing but Redis); the
last test runs four separate OS processes. The window runs on Redis's clock: time is moved
by ageing the calls stored in Redis, never by sleeping.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from reliable_llm import ChatResponse, Deployment, LLMManager, LocalRateLimitError, Usage
from reliable_llm.backends import RedisState
from reliable_llm.events import SharedStateDegraded, SharedStateRecovered
from reliable_llm.testing import FakeClock, ScriptedModel


def fleet(
    url: str, namespace: str, model: ScriptedModel, size: int = 2, **limits: Any
) -> list[tuple[LLMManager, list[Any], FakeClock]]:
    """``size`` managers ("processes") of one group ``g`` with one limited deployment."""
    members = []
    for _ in range(size):
        events: list[Any] = []
        clock = FakeClock()
        manager = LLMManager(
            clock=clock,
            random=lambda: 0.0,
            enable_caching=False,
            max_retries=0,
            hooks=[events.append],
            # Generous bounds: these tests are about sharing, not about a busy host's
            # slow connects or a pool exhausted by concurrent callers (both decide locally).
            shared_state=RedisState(
                url, namespace=namespace, timeout=0.5, connect_timeout=2.0, max_connections=64
            ),
        )
        manager.register_model("g", [Deployment(model, **limits)])
        members.append((manager, events, clock))
    return members


def age(url: str, namespace: str, seconds: float, count: int | None = None) -> None:
    """Make the oldest ``count`` calls (all by default) of ``g[0]``'s window ``seconds`` older."""
    client = redis.Redis.from_url(url)
    key = f"{namespace}:limits:g[0]"
    stored = client.zrange(key, 0, -1 if count is None else count - 1, withscores=True)
    client.zadd(key, {member: score - seconds * 1000 for member, score in stored})


def outages(events: list[Any]) -> list[type]:
    return [type(e) for e in events if isinstance(e, SharedStateDegraded | SharedStateRecovered)]


def outcome(call: Any) -> str:
    try:
        call()
    except LocalRateLimitError as error:
        return f"limited:{error.limit}"
    return "ok"


def test_two_processes_share_requests_per_minute_under_threads(
    redis_url: str, namespace: str
) -> None:
    """rpm=10 for the fleet: 8 threads over two managers send exactly 10 calls upstream."""
    model = ScriptedModel()
    managers = [m for m, _, _ in fleet(redis_url, namespace, model, rpm=10)]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def caller(manager: LLMManager) -> None:
        start.wait()
        for _ in range(5):
            result = outcome(lambda: manager.chat("hi", timeout=1))
            with lock:
                outcomes[result] += 1

    threads = [threading.Thread(target=caller, args=(managers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {"ok": 10, "limited:rpm": 30}
    assert model.call_count == 10
    for manager in managers:  # both see the fleet's count, not their own share
        assert manager.get_model_info("g[0]")["rate_limits"]["requests"] == 10


async def test_two_processes_share_the_limits_under_asyncio_tasks(
    redis_url: str, namespace: str
) -> None:
    """rpm=12, tpm=800 for the fleet: 60 tasks over two managers get exactly what fits,
    and no admission uses the blocking client on the event loop."""
    model = ScriptedModel(default=ChatResponse("ok", usage=Usage(40, 40)))  # as estimated
    members = fleet(redis_url, namespace, model, rpm=12, tpm=800)
    managers = [m for m, _, _ in members]
    blocking = [m.shared_state._link.client for m in managers]  # type: ignore[union-attr]
    saved = [(c.evalsha, c.eval) for c in blocking]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis call ran on the event loop")

    for client in blocking:
        client.evalsha = client.eval = refuse

    async def one(manager: LLMManager) -> str:
        try:
            await manager.achat("hi", max_tokens=79, timeout=1)  # estimate 80 tokens
        except LocalRateLimitError as error:
            return f"limited:{error.limit}"
        return "ok"

    try:
        results = Counter(await asyncio.gather(*(one(managers[i % 2]) for i in range(60))))
        for manager in managers:
            await manager.aclose()  # the settlements, sent by tasks, have arrived
    finally:
        for client, (evalsha, evaluate) in zip(blocking, saved, strict=True):
            client.evalsha, client.eval = evalsha, evaluate
    assert results == {"ok": 10, "limited:tpm": 50}  # 10 x 80 = 800 tokens
    assert model.call_count == 10
    info = managers[1].get_model_info("g[0]")["rate_limits"]
    assert (info["requests"], info["tokens"], info["shared"]) == (10, 800, True)


def test_settling_corrects_the_token_count_for_the_whole_fleet(
    redis_url: str, namespace: str
) -> None:
    """Each call reserves its estimate (501) and settles at its usage (30), seen by both."""
    model = ScriptedModel(default=ChatResponse("fine", usage=Usage(10, 20)))
    managers = [m for m, _, _ in fleet(redis_url, namespace, model, tpm=1000)]
    passed = 0
    with pytest.raises(LocalRateLimitError) as caught:
        for turn in range(100):
            managers[turn % 2].chat("hi", max_tokens=500, timeout=1)
            passed += 1
    # k calls settled at 30 tokens each leave room for one more while 30k + 501 <= 1000.
    assert passed == model.call_count == 17
    assert caught.value.limit == "tpm"
    for manager in managers:
        assert manager.get_model_info("g[0]")["rate_limits"]["tokens"] == 17 * 30


def test_the_refusal_names_the_limit_and_the_seconds_until_room(
    redis_url: str, namespace: str
) -> None:
    """rpm=3 used 50 s ago: the other process is refused with retry_in 10 s, then admitted
    once the oldest call has left the window."""
    model = ScriptedModel()
    first, second = (m for m, _, _ in fleet(redis_url, namespace, model, rpm=3))
    for _ in range(3):
        first.chat("hi")
    age(redis_url, namespace, 50.0)
    with pytest.raises(LocalRateLimitError) as caught:
        second.chat("hi", timeout=5)
    assert caught.value.limit == "rpm"
    assert caught.value.retry_in == pytest.approx(10.0, abs=0.5)
    age(redis_url, namespace, 11.0, count=1)  # the oldest call is now 61 s old
    assert second.chat("hi").text == "ok" and model.call_count == 4
    assert second.get_model_info("g[0]")["rate_limits"]["requests"] == 3


def test_a_token_refusal_waits_for_enough_old_calls_to_leave(
    redis_url: str, namespace: str
) -> None:
    """tpm=100 holding 40 + 40 tokens (50 s and 20 s old): 40 more fit once the older
    call leaves, in 10 s; a call alone above tpm can never fit."""
    model = ScriptedModel(default=ChatResponse("ok"))  # no usage: the estimates stay counted
    first, second = (m for m, _, _ in fleet(redis_url, namespace, model, tpm=100))
    first.chat("hi", max_tokens=39)  # estimate 40
    age(redis_url, namespace, 30.0)
    second.chat("hi", max_tokens=39)
    age(redis_url, namespace, 20.0)
    with pytest.raises(LocalRateLimitError) as caught:
        first.chat("hi", max_tokens=39, timeout=5)
    assert caught.value.limit == "tpm"
    assert caught.value.retry_in == pytest.approx(10.0, abs=0.5)
    with pytest.raises(LocalRateLimitError) as never:
        second.chat("hi", max_tokens=200, timeout=600)
    assert never.value.retry_in == math.inf and model.call_count == 2


def test_the_shared_window_expires_in_redis(redis_url: str, namespace: str) -> None:
    """The window's keys carry an expiry of about a minute: an idle deployment leaves
    nothing behind in Redis."""
    ((manager, _, _),) = fleet(redis_url, namespace, ScriptedModel(), size=1, rpm=5, tpm=500)
    manager.chat("hi")
    client = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in client.keys(f"{namespace}:limits:*"))
    assert keys == [f"{namespace}:limits:g[0]", f"{namespace}:limits:g[0]:tokens"]
    assert all(0 < client.pttl(k) <= 61_000 for k in keys)


def test_limits_without_redis_are_each_process_own_and_shared_again_after(
    tmp_path: Path,
) -> None:
    """Redis killed mid-run: requests go on under each process's own limit (one outage
    event); restarted: the two processes share the limit again."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        model = ScriptedModel()
        members = fleet(server.url, "ns", model, rpm=4)
        (first, first_events, first_clock), (second, _, second_clock) = members
        assert [outcome(lambda: first.chat("hi", timeout=1)) for _ in range(2)] == ["ok"] * 2
        server.kill()
        alone = [outcome(lambda: first.chat("hi", timeout=1)) for _ in range(5)]
        assert alone == ["ok"] * 4 + ["limited:rpm"]  # this process's own window
        assert outages(first_events) == [SharedStateDegraded]
        server.start()  # empty: no persistence
        for clock in (first_clock, second_clock):
            clock.advance(0.6)  # the first probe is due 0.5 s after the outage began
        shared = [outcome(lambda m=m: m.chat("hi", timeout=1)) for m in (first, second) * 3]
        assert shared == ["ok"] * 4 + ["limited:rpm"] * 2
        assert outages(first_events) == [SharedStateDegraded, SharedStateRecovered]
        assert redis.Redis.from_url(server.url).zcard("ns:limits:g[0]") == 4
        assert model.call_count == 2 + 4 + 4
    finally:
        server.kill()


def test_four_processes_together_stay_within_the_limit(redis_url: str, namespace: str) -> None:
    """Four OS processes send 15 requests each to a deployment with rpm=12: shared, the
    model receives 12 calls in all; per process, it receives 48."""
    import redis_limit_workers

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    barrier = context.Barrier(4)
    calls = {phase: context.Value("i", 0) for phase in ("shared", "alone")}
    workers = [
        context.Process(
            target=redis_limit_workers.send,
            args=(queue, barrier, calls, redis_url, namespace, 12, 15),
            daemon=True,
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        results = [queue.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(10)
    sent = {phase: counter.value for phase, counter in calls.items()}
    assert all("crashed" not in r for r in results), results
    assert len({r["pid"] for r in results}) == 4
    for phase in ("shared", "alone"):
        assert all(r[phase]["errors"] == [] for r in results), results
    assert sum(r["shared"]["served"] for r in results) == sent["shared"] == 12
    assert sum(r["shared"]["refused"] for r in results) == 4 * 15 - 12
    assert sent["alone"] == 4 * 12  # without shared state each process has the whole limit


def test_a_deployment_without_limits_makes_no_round_trip(redis_url: str, namespace: str) -> None:
    """lowest_usage without rpm/tpm counts in the process: no Redis keys for it."""
    manager = LLMManager(
        enable_caching=False, shared_state=RedisState(redis_url, namespace=namespace)
    )
    manager.register_model("g", [ScriptedModel(), ScriptedModel()], strategy="lowest_usage")
    assert manager.chat("hi").text == "ok"
    assert redis.Redis.from_url(redis_url).keys(f"{namespace}:limits:*") == []
    assert "shared" not in manager.get_model_info("g[0]")["rate_limits"]


def test_redis_state_limiter_rejects_bad_limits_and_hides_the_url(redis_url: str) -> None:
    """A bad rpm given to RedisState.limiter: ConfigurationError naming it; the limiter's
    repr names the deployment and limits, never the URL's password."""
    from reliable_llm import ConfigurationError

    state = RedisState(redis_url.replace("redis://", "redis://:hunter2@"))
    with pytest.raises(ConfigurationError, match="rpm must be a positive int"):
        state.limiter("g[0]", 0, None, FakeClock())
    shown = repr(state.limiter("g[0]", 5, None, FakeClock()))
    assert shown == "SharedRateLimiter('g[0]', rpm=5, tpm=None)"


def test_readme_limits_example_runs(
    redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's shared-limits example runs as written (on the test Redis): worker 1
    is refused at the fleet's rpm and sees the fleet's three requests."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Persistent and shared state", 1)[1]
    code = next(c for c in re.findall(r"```python\n(.*?)```", section, re.S) if "rpm=3" in c)
    assert "redis://127.0.0.1:6379/0" in code and '"my-service"' in code
    code = code.replace("redis://127.0.0.1:6379/0", redis_url).replace("my-service", namespace)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["rpm", "60", "3"]


async def test_a_cancelled_shared_admission_gives_the_bulkhead_slot_back(
    redis_url: str, namespace: str
) -> None:
    """A task cancelled while Redis decides its admission frees its bulkhead slot: the next
    call gets through."""
    model = ScriptedModel()
    ((manager, _, _),) = fleet(redis_url, namespace, model, size=1, rpm=100, max_concurrent_calls=1)
    limiter = manager._registry.entry_or_deployment("g[0]").provider.state.limiter
    entered = asyncio.Event()

    async def hang(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await asyncio.Event().wait()

    limiter._ascripts[manager.shared_state._link.aclient()] = (hang, hang)  # type: ignore[union-attr]
    task = asyncio.create_task(manager.achat("hi"))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    del limiter._ascripts[manager.shared_state._link.aclient()]  # type: ignore[union-attr]
    assert manager.get_model_info("g[0]")["bulkhead"]["in_flight"] == 0
    assert (await manager.achat("hi", timeout=1)).text == "ok" and model.call_count == 1
    await manager.aclose()


def test_a_redis_that_stops_answering_costs_one_timeout_then_limits_go_local(
    tmp_path: Path,
) -> None:
    """Redis frozen (SIGSTOP): the first request waits out the 50 ms timeout, then every
    request is limited in-process at once; nothing fails because of Redis."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        model = ScriptedModel()
        events: list[Any] = []
        manager = LLMManager(
            clock=FakeClock(),
            enable_caching=False,
            max_retries=0,
            hooks=[events.append],
            shared_state=RedisState(server.url, namespace="ns", timeout=0.05),
        )
        manager.register_model("g", [Deployment(model, rpm=3)])
        assert manager.chat("warm").text == "ok"  # connections open while Redis answers
        assert server._process is not None
        server._process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        results = [outcome(lambda: manager.chat("hi", timeout=1)) for _ in range(4)]
        elapsed = time.monotonic() - started
        assert results == ["ok"] * 3 + ["limited:rpm"]  # this process's own window of 3
        assert outages(events) == [SharedStateDegraded]
        assert elapsed < 1.0  # one bounded timeout, not one per call
    finally:
        if server._process is not None:
            server._process.send_signal(signal.SIGCONT)
        server.kill()
