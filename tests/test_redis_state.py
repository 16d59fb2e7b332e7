"""RedisState in one process: several managers sharing one real redis-server.

Two managers on one Redis namespace stand for two processes (they share nothing else);
the multi-process drills are in test_redis_fleet.py. Windows are expired by moving the
fake clock and Redis's stored deadline, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    BreakerState,
    ConfigurationError,
    LLMManager,
    RateLimitError,
    ServerError,
)
from reliable_llm._breaker import Admission, Trial
from reliable_llm._cache import prompt_cache_key
from reliable_llm._clock import SystemClock
from reliable_llm.backends import RedisState
from reliable_llm.events import SharedStateDegraded, SharedStateRecovered
from reliable_llm.testing import FakeClock


class Counting:
    """A model that counts its calls and fails with ``error`` while one is set."""

    def __init__(self, answer: str = "ok", error: Exception | None = None) -> None:
        self.calls = 0
        self.answer = answer
        self.error = error
        self._lock = threading.Lock()

    def __call__(self, prompt: str, **kwargs: Any) -> str:
        with self._lock:
            self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


def fleet_manager(
    url: str, namespace: str, primary: Counting, backup: Counting, **kwargs: Any
) -> tuple[LLMManager, list[Any]]:
    """A manager of the fleet: primary then backup, shared state, events collected."""
    events: list[Any] = []
    state = RedisState(url, namespace=namespace, timeout=0.5)
    manager = LLMManager(
        max_retries=0,
        clock=kwargs.pop("clock", None) or FakeClock(),
        random=lambda: 0.0,
        hooks=[events.append],
        shared_state=state,
        breaker=BreakerPolicy(failure_threshold=3, recovery_timeout=30.0),
        **kwargs,
    )
    manager.register_model("primary", primary)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    return manager, events


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def evalsha_calls(url: str) -> int:
    """Scripts Redis has run so far (every shared decision is one EVALSHA)."""
    return int(raw(url).info("commandstats")["cmdstat_evalsha"]["calls"])


def expire_window(url: str, namespace: str, model: str, clock: FakeClock) -> None:
    """End the open window: in Redis (its stored deadline) and on this process's clock."""
    raw(url).hset(f"{namespace}:breaker:{model}", "u", 0)
    clock.advance(31.0)


def test_a_breaker_opened_by_one_manager_is_open_for_the_other(
    redis_url: str, namespace: str
) -> None:
    """Failures seen by one process open the breaker for all: the other never calls primary."""
    dead = Counting(error=ServerError("down"))
    first, _ = fleet_manager(redis_url, namespace, dead, Counting("b1"))
    second, events = fleet_manager(redis_url, namespace, dead, Counting("b2"))
    for _ in range(3):
        assert first.generate("q", use_cache=False) == "b1"
    assert dead.calls == 3
    assert second.generate("q", use_cache=False) == "b2"
    assert dead.calls == 3
    assert second.get_model_info("primary")["breaker"]["state"] == "open"
    assert any(getattr(e, "new", None) is BreakerState.OPEN for e in events)


def test_no_round_trip_while_open(redis_url: str, namespace: str) -> None:
    """While the shared breaker is open, requests are rejected without asking Redis."""
    dead = Counting(error=ServerError("down"))
    manager, _ = fleet_manager(redis_url, namespace, dead, Counting("b"))
    for _ in range(3):
        manager.generate("q", use_cache=False)
    before = evalsha_calls(redis_url)
    for _ in range(50):
        assert manager.generate("q", use_cache=False) == "b"
    # backup's admission is one EVALSHA per request; primary's costs nothing.
    assert evalsha_calls(redis_url) - before == 50
    assert dead.calls == 3


def test_one_trial_per_window_across_the_fleet(redis_url: str, namespace: str) -> None:
    """After the window, one process takes the trial; the others are rejected until it ends."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=30.0)
    one = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    two = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    one.record_failure(one.admit(5.0))
    assert two.admit(5.0) is Admission.REJECTED
    expire_window(redis_url, namespace, "m", clock)
    trial = one.admit(5.0)
    assert isinstance(trial, Trial)
    assert two.admit(5.0) is Admission.REJECTED
    one.record_neutral(trial)  # ended without a verdict: the slot is free again
    second_trial = two.admit(5.0)
    assert isinstance(second_trial, Trial)
    two.record_success(second_trial)
    assert one.admit(5.0) is Admission.ALLOWED
    assert one.state is BreakerState.CLOSED and two.state is BreakerState.CLOSED


def test_a_trial_lease_expires_with_its_holder(redis_url: str, namespace: str) -> None:
    """A trial whose holder vanished frees the slot once its lease (the attempt timeout) ends."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=30.0)
    one = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    two = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    one.record_failure(one.admit(5.0))
    expire_window(redis_url, namespace, "m", clock)
    assert isinstance(one.admit(5.0), Trial)  # never released: its process "died"
    raw(redis_url).pexpire(f"{namespace}:trial:m", 1)  # the lease runs out
    raw(redis_url).delete(f"{namespace}:trial:m")
    assert isinstance(two.admit(5.0), Trial)


def test_a_late_outcome_from_before_a_transition_is_ignored(redis_url: str, namespace: str) -> None:
    """A failure admitted before the breaker opened and closed again does not count after."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=30.0)
    slow = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    other = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    late = slow.admit(5.0)  # its call hangs while the fleet goes closed -> open -> closed
    other.record_failure(other.admit(5.0))
    other.record_failure(other.admit(5.0))
    expire_window(redis_url, namespace, "m", clock)
    trial = other.admit(5.0)
    other.record_success(trial)
    slow.record_failure(late)
    assert raw(redis_url).hget(f"{namespace}:breaker:m", "f") == b"0"
    assert other.admit(5.0) is Admission.ALLOWED


def test_a_late_outcome_counts_by_its_own_admission_not_the_latest(
    redis_url: str, namespace: str
) -> None:
    """Same breaker, two threads: a call admitted before the fleet reopened and closed is
    ignored even after this process was admitted again under the new generation."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=30.0)
    mine = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    other = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    admitted = threading.Event()
    finish = threading.Event()

    def slow_call() -> None:
        ticket = mine.admit(5.0)  # admitted now; its failure arrives much later
        admitted.set()
        finish.wait(5)
        mine.record_failure(ticket)

    worker = threading.Thread(target=slow_call)
    worker.start()
    assert admitted.wait(5)
    other.record_failure(other.admit(5.0))
    other.record_failure(other.admit(5.0))
    expire_window(redis_url, namespace, "m", clock)
    other.record_success(other.admit(5.0))  # the trial closes it: a new generation
    assert mine.admit(5.0) is Admission.ALLOWED  # this process learns the new generation
    finish.set()
    worker.join(5)
    assert raw(redis_url).hget(f"{namespace}:breaker:m", "f") == b"0"


def test_an_open_window_is_never_shortened(redis_url: str, namespace: str) -> None:
    """A later, smaller cooldown hint leaves the longer window in place."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=5, recovery_timeout=30.0)
    breaker = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    breaker.record(breaker.admit(5.0), RateLimitError("slow down", retry_after=20.0))
    breaker.record(breaker.admit(5.0), RateLimitError("slow down", retry_after=0.5))
    left = raw(redis_url).pttl(f"{namespace}:cooldown:m")
    assert 19_000 < left <= 20_000


def test_a_sub_millisecond_hint_is_a_one_millisecond_cooldown(
    redis_url: str, namespace: str
) -> None:
    """A 503 hinting 0.4 ms cools the model for 1 ms: Redis is never asked for a PX of 0."""
    state = RedisState(redis_url, namespace=namespace)
    breaker = state.breaker("m", BreakerPolicy(), FakeClock(), None)
    breaker.record(breaker.admit(5.0), ServerError("busy", status_code=503, retry_after=0.0004))
    assert state.available
    assert raw(redis_url).pttl(f"{namespace}:cooldown:m") in (-2, 0, 1)


def test_a_retry_after_keeps_every_process_off_the_model(redis_url: str, namespace: str) -> None:
    """A 429 with Retry-After seen by one manager makes the other fall back at once."""
    limited = Counting(error=RateLimitError("slow down", status_code=429, retry_after=30.0))
    first, _ = fleet_manager(redis_url, namespace, limited, Counting("b1"))
    second, _ = fleet_manager(redis_url, namespace, limited, Counting("b2"))
    assert first.generate("q", use_cache=False) == "b1"
    limited.error = None  # it would answer now, but the hint said 30 s
    assert second.generate("q", use_cache=False) == "b2"
    assert limited.calls == 1
    assert 29 < second._registry.models["primary"].breaker.retry_in() <= 30
    info = second.get_model_info("primary")["breaker"]
    assert info["state"] == "closed" and 29 < info["cooldown"] <= 30  # cooling, not open


def test_the_last_model_waits_out_a_short_cooldown(redis_url: str, namespace: str) -> None:
    """With no model left to fall back to, a cooldown that fits the deadline is waited out."""
    limited = Counting(error=RateLimitError("slow down", status_code=429, retry_after=0.3))
    first, _ = fleet_manager(redis_url, namespace, limited, Counting("b1"))
    assert first.generate("q", use_cache=False) == "b1"
    limited.error = None
    second, _ = fleet_manager(redis_url, namespace, limited, Counting(), clock=SystemClock())
    started = time.monotonic()
    answer = second.generate("q", use_cache=False, fallback_chain=[])
    waited = time.monotonic() - started
    assert answer == "ok" and limited.calls == 2
    assert 0.2 < waited < 2.0


def test_a_cooldown_longer_than_the_deadline_fails_fast(redis_url: str, namespace: str) -> None:
    """A last model cooling down for longer than the request may take is given up at once,
    reported as cooling_down with the seconds left."""
    limited = Counting(error=RateLimitError("slow down", status_code=429, retry_after=30.0))
    first, _ = fleet_manager(redis_url, namespace, limited, Counting("b1"))
    first.generate("q", use_cache=False)
    clock = FakeClock()
    second, _ = fleet_manager(redis_url, namespace, limited, Counting(), clock=clock)
    with pytest.raises(AllModelsFailedError) as caught:
        second.generate("q", use_cache=False, fallback_chain=[], timeout=5.0)
    failure = caught.value.failures[0]
    assert failure.reason == "cooling_down"  # the fleet's Retry-After, not an open breaker
    assert re.fullmatch(r"Retry-After cooldown, (29\.\d+|30)s left", failure.detail)
    assert clock.monotonic() == 0.0 and limited.calls == 1


def test_the_cache_is_shared_as_json(redis_url: str, namespace: str) -> None:
    """An answer cached by one manager is a hit in the other; Redis holds JSON text."""
    primary = Counting("shared answer")
    first, _ = fleet_manager(redis_url, namespace, primary, Counting())
    second, _ = fleet_manager(redis_url, namespace, primary, Counting())
    assert first.generate("q") == "shared answer"
    response = second.chat("q")
    assert response.cached and response.text == "shared answer"
    assert primary.calls == 1
    keys = raw(redis_url).keys(f"{namespace}:cache:*")
    assert len(keys) == 1
    assert json.loads(raw(redis_url).get(keys[0]))["text"] == "shared answer"
    assert len(second.cache) == 1


def test_a_cache_backend_given_wins_over_the_shared_cache(redis_url: str, namespace: str) -> None:
    """With cache_backend= the user's backend holds the answers, not Redis."""
    from reliable_llm import CachePolicy, InMemoryCache

    mine = InMemoryCache(CachePolicy(), FakeClock())
    manager, _ = fleet_manager(redis_url, namespace, Counting(), Counting(), cache_backend=mine)
    manager.generate("q")
    assert len(mine) == 1
    assert raw(redis_url).keys(f"{namespace}:cache:*") == []


def test_identical_requests_in_two_processes_make_one_call(redis_url: str, namespace: str) -> None:
    """Single flight across managers: the follower waits for the leader's cached answer."""
    release = threading.Event()
    started = threading.Event()
    calls: list[str] = []

    def slow(prompt: str, **kwargs: Any) -> str:
        calls.append(prompt)
        started.set()
        release.wait(5)
        return "once"

    first, _ = fleet_manager(redis_url, namespace, Counting(), Counting())
    second, _ = fleet_manager(redis_url, namespace, Counting(), Counting())
    for manager in (first, second):
        manager.register_model("slow", slow)
    answers: list[str] = []
    leader = threading.Thread(target=lambda: answers.append(first.generate("q", model="slow")))
    leader.start()
    assert started.wait(5)
    follower = threading.Thread(target=lambda: answers.append(second.generate("q", model="slow")))
    follower.start()
    release.set()
    leader.join(5)
    follower.join(5)
    assert answers == ["once", "once"]
    assert calls == ["q"]


def test_a_working_leader_keeps_its_lease(redis_url: str, namespace: str) -> None:
    """The lease outlives flight_lease while its leader works (renewed), and is freed after."""
    state = RedisState(redis_url, namespace=namespace, flight_lease=0.15)
    manager = LLMManager(shared_state=state)
    lease = f"{namespace}:flight:{prompt_cache_key('slow', 'q')}"
    seen: list[int] = []

    def slow(prompt: str, **kwargs: Any) -> str:
        for _ in range(4):  # 0.4 s of work: more than twice the lease
            time.sleep(0.1)
            seen.append(raw(redis_url).exists(lease))
        return "done"

    manager.register_model("slow", slow)
    assert manager.generate("q") == "done"
    assert seen == [1, 1, 1, 1]
    assert raw(redis_url).exists(lease) == 0


def test_a_follower_runs_itself_when_the_leader_lease_is_gone(
    redis_url: str, namespace: str
) -> None:
    """A lease whose leader died (it expired, nothing cached) lets the follower call the model."""
    lease = f"{namespace}:flight:{prompt_cache_key('primary', 'q')}"
    raw(redis_url).set(lease, "a-leader-that-died", px=60_000)

    class ExpiringClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            raw(redis_url).delete(lease)  # the dead leader's lease runs out while we wait

    clock = ExpiringClock()
    primary = Counting("mine")
    manager, _ = fleet_manager(redis_url, namespace, primary, Counting(), clock=clock)
    assert manager.generate("q") == "mine"
    assert primary.calls == 1
    assert 0 < clock.monotonic() < 1  # it waited one short poll, not its whole deadline


async def test_the_async_path_shares_cache_and_breakers(redis_url: str, namespace: str) -> None:
    """agenerate reads and writes the shared cache with the asyncio client."""
    primary = Counting("async answer")
    first, _ = fleet_manager(redis_url, namespace, primary, Counting())
    second, _ = fleet_manager(redis_url, namespace, primary, Counting())
    assert await first.agenerate("q") == "async answer"
    assert (await second.achat("q")).cached
    assert primary.calls == 1
    await first.aclose()
    await second.aclose()


async def test_the_async_path_never_waits_on_the_blocking_client(
    redis_url: str, namespace: str
) -> None:
    """Under agenerate/astream, admissions and outcomes go through the asyncio client."""
    dead = Counting(error=ServerError("down"))
    manager, _ = fleet_manager(redis_url, namespace, dead, Counting("b"))

    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis admission ran on the event loop")

    link = manager.shared_state._link  # type: ignore[union-attr]
    for name in ("ADMIT", "FAILURE", "pipeline.GUARDED_ADMIT"):
        link.scripts[name] = blocking
    try:
        for _ in range(3):
            assert await manager.agenerate("q", use_cache=False) == "b"
        await _settled(manager)  # the outcomes travel to Redis in tasks of this loop
        chunks = [c.text async for c in manager.astream("q", use_cache=False)]
        assert "".join(chunks) == "b" and dead.calls == 3
        assert raw(redis_url).hget(f"{namespace}:breaker:primary", "s") == b"1"
    finally:
        await manager.aclose()


def test_an_unreachable_redis_degrades_once_and_requests_go_on(
    caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    """Redis down: every request answered in-process; one event and one warning in all."""
    server = RedisServer(tmp_path)  # a free port nobody serves yet
    clock = FakeClock()
    dead = Counting(error=ServerError("down"))
    manager, events = fleet_manager(server.url, "ns", dead, Counting("b"), clock=clock)
    with caplog.at_level(logging.WARNING, logger="reliable_llm"):
        for _ in range(10):
            assert manager.generate("q", use_cache=False) == "b"
            clock.advance(1.0)  # probes come and fail: still one report
    degraded = [e for e in events if isinstance(e, SharedStateDegraded)]
    assert len(degraded) == 1 and degraded[0].backend == "redis"
    assert sum("shared state" in r.getMessage() for r in caplog.records) == 1
    assert dead.calls == 3  # the in-process breaker opened after 3 failures
    assert not manager.shared_state.available


def test_shared_state_is_used_again_when_redis_answers(tmp_path: Any) -> None:
    """After an outage, the next probe reconnects: a recovery event, and sharing resumes."""
    server = RedisServer(tmp_path)
    server.start()
    clock = FakeClock()
    try:
        primary = Counting("p")
        manager, events = fleet_manager(server.url, "ns", primary, Counting(), clock=clock)
        assert manager.generate("a") == "p"
        server.kill()
        assert manager.generate("b") == "p"
        server.start()
        clock.advance(0.6)  # the first probe is due 0.5 s after the outage began
        assert manager.generate("c") == "p"
        assert [type(e) for e in events if "SharedState" in type(e).__name__] == [
            SharedStateDegraded,
            SharedStateRecovered,
        ]
        assert manager.shared_state.available
        assert raw(server.url).exists(*[k for k in raw(server.url).keys("ns:cache:*")]) >= 1
    finally:
        server.kill()


def test_bad_shared_state_and_bad_parameters_raise_clear_errors() -> None:
    """Wrong shared_state, URL, namespace or timeout: ConfigurationError naming the fix."""
    with pytest.raises(ConfigurationError, match="shared_state must be a reliable_llm"):
        LLMManager(shared_state="redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="url must be a Redis URL"):
        RedisState("localhost:6379")
    with pytest.raises(ConfigurationError, match="not a Redis URL") as caught:
        RedisState("redis://:secret-pw@host:notaport/0")
    assert "secret-pw" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="namespace"):
        RedisState("redis://127.0.0.1:1/0", namespace="")
    with pytest.raises(ConfigurationError, match="timeout must be a positive"):
        RedisState("redis://127.0.0.1:1/0", timeout=0)
    with pytest.raises(ConfigurationError, match="flight_lease must be a number"):
        RedisState("redis://127.0.0.1:1/0", flight_lease="2")  # type: ignore[arg-type]


def test_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    """A URL's password stays out of the repr, the warning and the degradation event."""
    events: list[Any] = []
    state = RedisState("redis://:hunter2@127.0.0.1:1/0", timeout=0.05)
    manager = LLMManager(shared_state=state, hooks=[events.append], clock=FakeClock())
    manager.register_model("m", Counting())
    with caplog.at_level(logging.WARNING, logger="reliable_llm"):
        assert manager.generate("q") == "ok"
    shown = repr(state) + caplog.text + repr(events)
    assert "hunter2" not in shown
    assert any(isinstance(e, SharedStateDegraded) for e in events)


def test_readme_example_runs(
    redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's RedisState example runs as written (on the test Redis) and prints open."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Persistent and shared state", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    assert "redis://127.0.0.1:6379/0" in code and '"my-service"' in code
    code = code.replace("redis://127.0.0.1:6379/0", redis_url).replace("my-service", namespace)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["open"]


def test_the_example_worker_learns_the_outage_from_the_fleet(
    redis_url: str, namespace: str
) -> None:
    """examples/shared_breakers.py's worker: shared, the second worker never calls the
    dead primary; per-process, each pays the whole threshold."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "shared_breakers.py"
    spec = importlib.util.spec_from_file_location("shared_breakers", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert [example.worker(redis_url, namespace) for _ in range(2)] == [5, 0]
    assert [example.worker(None, namespace) for _ in range(2)] == [5, 5]


def test_without_redis_py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """RedisState without redis-py installed: a ConfigurationError saying what to install."""
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    with pytest.raises(ConfigurationError, match=r"reliable-llm\[redis\]"):
        RedisState("redis://127.0.0.1:1/0")


def test_the_shared_cache_count_is_a_scan_reused_for_five_seconds(
    redis_url: str, namespace: str
) -> None:
    """len(cache) counts the namespace's entries in Redis; metrics reuse a count for 5 s."""
    clock = FakeClock()
    manager, _ = fleet_manager(redis_url, namespace, Counting(), Counting(), clock=clock)
    manager.generate("one")
    assert len(manager.cache) == 1
    manager.generate("two")
    assert manager.get_metrics()["cache"]["size"] == 1  # the count of a moment ago
    clock.advance(5.0)
    assert len(manager.cache) == 2


def test_junk_in_the_shared_cache_is_a_miss_reported_once_and_evicted(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache entry that is not JSON (written by something else) is a miss, one CacheError,
    and gone: the next request caches a good answer."""
    from reliable_llm.events import CacheError

    primary = Counting("fresh")
    manager, events = fleet_manager(redis_url, namespace, primary, Counting())
    key = f"{namespace}:cache:{prompt_cache_key('primary', 'q')}"
    raw(redis_url).set(key, b"\x80\x04pickled-looking junk")
    with caplog.at_level(logging.WARNING, logger="reliable_llm"):
        assert manager.generate("q") == "fresh"
        assert manager.generate("q") == "fresh"
    errors = [e for e in events if isinstance(e, CacheError)]
    assert len(errors) == 1 and "not JSON" in errors[0].error and "junk" not in errors[0].error
    assert primary.calls == 1
    assert json.loads(raw(redis_url).get(key))["text"] == "fresh"


def _half_open(url: str, namespace: str, manager: LLMManager, clock: FakeClock) -> None:
    """Open primary's shared breaker with three failures, then end its window."""
    for _ in range(3):
        manager.generate("q", use_cache=False)
    expire_window(url, namespace, "primary", clock)


def test_a_trial_interrupted_by_keyboard_interrupt_frees_the_fleet_slot(
    redis_url: str, namespace: str
) -> None:
    """KeyboardInterrupt inside the fleet's one trial: the lease is released, not left to expire."""
    clock = FakeClock()
    primary = Counting(error=ServerError("down"))
    manager, _ = fleet_manager(redis_url, namespace, primary, Counting(), clock=clock)
    _half_open(redis_url, namespace, manager, clock)
    primary.error = KeyboardInterrupt()  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        manager.generate("q", use_cache=False)
    assert raw(redis_url).exists(f"{namespace}:trial:primary") == 0
    primary.error = None
    assert manager.generate("q", use_cache=False) == "ok"  # the next request takes the trial


async def _settled(manager: LLMManager) -> None:
    """Wait (up to 1 s) until the outcomes recorded on this loop have reached Redis."""
    link = manager.shared_state._link  # type: ignore[union-attr]
    for _ in range(1000):
        if not link._tasks:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("outcomes still on their way to Redis after 1 s")


async def test_a_cancelled_async_trial_frees_the_fleet_slot(redis_url: str, namespace: str) -> None:
    """A task cancelled during the fleet's trial releases the lease (from a task of its loop)."""
    clock = FakeClock()
    started = asyncio.Event()

    async def hangs(prompt: str, **kwargs: Any) -> str:
        started.set()
        await asyncio.sleep(60)
        return "late"

    manager, _ = fleet_manager(
        redis_url, namespace, Counting(error=ServerError("down")), Counting(), clock=clock
    )
    for _ in range(3):
        await manager.agenerate("q", use_cache=False)
    await _settled(manager)
    expire_window(redis_url, namespace, "primary", clock)
    manager.register_model("primary", hangs, replace=True)
    task = asyncio.create_task(manager.agenerate("q", use_cache=False))
    await started.wait()
    assert raw(redis_url).exists(f"{namespace}:trial:primary") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _settled(manager)  # the release travels in a task of this loop
    assert raw(redis_url).exists(f"{namespace}:trial:primary") == 0
    await manager.aclose()


def test_calls_failing_together_at_an_outage_do_not_stretch_the_probe_wait() -> None:
    """Eight calls that fail at once start one outage: the first probe still comes after
    0.5 s; only failed probes double the wait."""
    clock = FakeClock()
    state = RedisState("redis://127.0.0.1:1/0")
    LLMManager(shared_state=state, clock=clock)
    link = state._link
    for _ in range(8):
        link.failed(ConnectionError("refused"))
    clock.advance(0.5)
    assert link.usable()  # the probe
    assert not link.usable()  # one at a time
    link.failed(ConnectionError("refused"))  # the probe failed: now 1 s
    clock.advance(0.9)
    assert not link.usable()
    clock.advance(0.1)
    assert link.usable()


def test_the_fleet_open_time_grows_with_consecutive_openings(
    redis_url: str, namespace: str
) -> None:
    """max_recovery_timeout: each failed trial doubles, triples... the fleet's open window."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, max_recovery_timeout=25.0)
    breaker = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    client = raw(redis_url)

    def window() -> float:
        seconds, micros = client.time()
        until = int(client.hget(f"{namespace}:breaker:m", "u"))
        return (until - (seconds * 1000 + micros // 1000)) / 1000

    breaker.record_failure(breaker.admit(5.0))
    assert 9.0 < window() <= 10.0
    windows = []
    for _ in range(2):
        client.hset(f"{namespace}:breaker:m", "u", 0)
        clock.advance(100.0)
        trial = breaker.admit(5.0)
        assert isinstance(trial, Trial)
        breaker.record_failure(trial)
        windows.append(window())
    assert 19.0 < windows[0] <= 20.0 and 24.0 < windows[1] <= 25.0  # capped at 25
    observer = RedisState(redis_url, namespace=namespace).breaker("m", policy, clock, None)
    assert 24.0 < float(observer.snapshot()["open_time"]) <= 25.0  # the fleet's, not its own


async def test_an_async_follower_waits_for_the_fleet_leader_without_blocking(
    redis_url: str, namespace: str
) -> None:
    """Async single flight across managers: the follower polls the shared cache with the
    asyncio client (never the blocking one) and gets the leader's answer: one call."""
    release = asyncio.Event()
    started = asyncio.Event()
    calls: list[str] = []

    async def slow(prompt: str, **kwargs: Any) -> str:
        calls.append(prompt)
        started.set()
        await release.wait()
        return "once"

    first, _ = fleet_manager(redis_url, namespace, Counting(), Counting(), clock=SystemClock())
    second, events = fleet_manager(
        redis_url, namespace, Counting(), Counting(), clock=SystemClock()
    )
    for manager in (first, second):
        manager.register_model("slow", slow)

    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis GET ran on the event loop")

    second.shared_state._link.client.get = blocking  # type: ignore[union-attr]
    leader = asyncio.create_task(first.agenerate("q", model="slow"))
    await asyncio.wait_for(started.wait(), 5)
    follower = asyncio.create_task(second.agenerate("q", model="slow"))
    await asyncio.sleep(0.05)  # the follower is polling
    release.set()
    assert await asyncio.wait_for(asyncio.gather(leader, follower), 5) == ["once", "once"]
    assert calls == ["q"]
    assert [e for e in events if type(e).__name__ == "CacheError"] == []  # no blocking GET
    await first.aclose()
    await second.aclose()
