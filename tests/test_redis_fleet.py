"""Eight separate OS processes sharing one real redis-server, against the fake LLM server.

The workers (started once for the module, see redis_workers.py) talk to a dead ``primary``
and a healthy ``backup`` on the fake server; upstream calls are counted from the server's
request log, never from what the workers believe they sent. Time windows are short and real:
these drills are about time across processes. Redis calls in the workers are bounded by a
generous 0.25 s: these are not tests of a slow Redis (test_redis_slow.py is).
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from reliable_llm.testing.fake_server import FakeLLMServer, Reply, rate_limited, server_error

PROCESSES = 8


# What a worker imports to warm up (a module missing here is imported by the worker itself).
PRELOAD = [
    "redis_workers",
    "openai",
    "openai.resources.chat",
    "openai.lib.streaming.chat",
    "httpcore2",
    "anyio.streams.tls",
    "truststore",
    "redis",
    "redis.asyncio",
    "reliable_llm.backends._redis_link",
]


def worker_context() -> multiprocessing.context.BaseContext:
    """Fresh interpreters, nothing inherited from the test process: forked from a fork server
    that has imported the workers' modules (the SDK and redis-py) once, so eight workers cost
    one import, not eight; spawned where there is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class Fleet:
    """The worker processes; `run` sends one command to each and gathers the results.

    Commands are numbered, so a late answer to an earlier command is never taken for the
    answer to the current one; a worker that does not answer in time breaks the fleet, and
    every later test says so instead of waiting again.
    """

    def __init__(self, size: int) -> None:
        import redis_workers

        context = worker_context()
        self.pipes = []
        self.processes = []
        self.number = 0
        self.broken: str | None = None
        for _ in range(size):
            mine, theirs = context.Pipe()
            process = context.Process(target=redis_workers.serve, args=(theirs,), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)

    def send(self, name: str, processes: int | None = None, **kwargs: Any) -> int:
        if self.broken:
            raise AssertionError(f"the worker fleet is broken: {self.broken}")
        self.number += 1
        for pipe in self.pipes[: processes or len(self.pipes)]:
            pipe.send((self.number, name, kwargs))
        return self.number

    def gather(self, number: int, processes: int | None = None, timeout: float = 120) -> list[Any]:
        results = []
        give_up = time.monotonic() + timeout
        for pipe in self.pipes[: processes or len(self.pipes)]:
            while True:
                if not pipe.poll(max(give_up - time.monotonic(), 0)):
                    self.broken = f"a worker did not answer command {number} in {timeout} s"
                    raise AssertionError(self.broken)
                answered, status, value = pipe.recv()
                if answered == number:
                    break
            if status != "ok":
                raise AssertionError(f"worker failed:\n{value}")
            results.append(value)
        return results

    def run(self, name: str, processes: int | None = None, **kwargs: Any) -> list[Any]:
        return self.gather(self.send(name, processes, **kwargs), processes)

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        give_up = time.monotonic() + 3
        for process in self.processes:
            process.join(max(give_up - time.monotonic(), 0))
            if process.is_alive():
                process.kill()


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLMServer]:
    """One fake server for the module (the workers keep their SDK clients for it)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def fleet(llm_server: FakeLLMServer) -> Iterator[Fleet]:
    """Eight worker processes (see `worker_context`), warmed:
    the SDK imported and its clients built before any timed phase."""
    workers = Fleet(PROCESSES)
    try:
        pids = workers.gather(
            workers.send("warm", base_url=llm_server.openai_base_url), timeout=300
        )
        assert len(set(pids)) == PROCESSES  # separate OS processes
        yield workers
    finally:
        workers.close()


@pytest.fixture
def llm(llm_server: FakeLLMServer) -> FakeLLMServer:
    """The fake server, reset: ``primary`` answers 500 until told otherwise, ``backup``
    answers."""
    llm_server.reset()
    llm_server.set_default("primary", server_error(500))
    llm_server.set_default("backup", Reply("backup answer"))
    return llm_server


def common(redis_url: str | None, llm: FakeLLMServer, **options: Any) -> dict[str, Any]:
    namespace = f"fleet-{uuid.uuid4().hex[:10]}"
    return {
        "namespace": namespace,
        "redis_url": redis_url,
        "base_url": llm.openai_base_url,
        **options,
    }


def calls_for(llm: FakeLLMServer, model: str, prompt: str) -> int:
    """Requests the fake server received for ``model`` whose last message is ``prompt``."""
    return sum(
        r.model == model and r.body is not None and r.body["messages"][-1]["content"] == prompt
        for r in llm.requests
    )


def soon(seconds: float = 0.3) -> float:
    """A wall-clock start time every worker waits for, so they start together."""
    return time.time() + seconds


def wait_for_window_end(redis_url: str, namespace: str) -> None:
    """Sleep until the shared breaker's open window has ended, on Redis's clock."""
    client = redis.Redis.from_url(redis_url)
    until = int(client.hget(f"{namespace}:breaker:primary", "u") or 0)
    seconds, micros = client.time()
    left = until - (seconds * 1000 + micros // 1000)
    time.sleep(max(left, 0) / 1000 + 0.05)


def test_a_dead_primary_costs_the_fleet_one_threshold_then_nothing(
    fleet: Fleet, llm: FakeLLMServer, redis_url: str
) -> None:
    """8 processes: at most threshold + processes calls open the shared breaker; then 0."""
    args = common(redis_url, llm, threshold=5, recovery=30.0)
    fleet.run("requests", count=0, **args)  # each worker builds its manager first
    first = fleet.run("requests", count=6, start_at=soon(), **args)
    assert sum(r["failed"] for r in first) == 0
    opened_after = llm.request_count("primary")
    assert 5 <= opened_after <= 5 + PROCESSES
    second = fleet.run("requests", count=6, start_at=soon(0.1), **args)
    assert llm.request_count("primary") == opened_after  # open: no process called it
    assert all(r["answered_by"] == {"backup": 6} for r in second)


def test_one_trial_per_recovery_window_across_the_fleet(
    fleet: Fleet, llm: FakeLLMServer, redis_url: str
) -> None:
    """Each recovery window lets exactly one process send a trial; a good one closes it."""
    args = common(redis_url, llm, threshold=2, recovery=1.5)
    fleet.run("requests", count=0, **args)  # each worker builds its manager first
    fleet.run("requests", count=2, start_at=soon(), **args)
    for _ in range(2):
        wait_for_window_end(redis_url, args["namespace"])
        before = llm.request_count("primary")
        fleet.run("requests", count=3, start_at=soon(0.1), **args)
        assert llm.request_count("primary") == before + 1  # one trial, failed: open again
    llm.set_default("primary", Reply("primary answer"))
    wait_for_window_end(redis_url, args["namespace"])
    before = llm.request_count("primary")
    fleet.run("requests", count=1, processes=1, **args)  # the trial: it succeeds
    assert llm.request_count("primary") == before + 1
    results = fleet.run("requests", count=2, start_at=soon(0.1), **args)
    assert all(r["answered_by"] == {"primary": 2} for r in results)  # closed everywhere


def test_a_retry_after_seen_by_one_process_keeps_all_off_the_model(
    fleet: Fleet, llm: FakeLLMServer, redis_url: str
) -> None:
    """Retry-After: 5 to one process: no process calls that model for 5 s, then all do."""
    llm.set_default("primary", Reply("primary answer"))
    llm.script("primary", rate_limited(retry_after="5"))
    args = common(redis_url, llm)
    fleet.run("requests", count=0, **args)  # each worker builds its manager first
    assert fleet.run("requests", count=1, processes=1, **args)[0]["answered_by"] == {"backup": 1}
    # The fleet's cooldown, on Redis's clock: the whole 5 s of the hint, less the moments
    # since the 429 arrived.
    left = redis.Redis.from_url(redis_url).pttl(f"{args['namespace']}:cooldown:primary") / 1000
    ends = time.time() + left
    assert 4.0 < left <= 5.0, left
    for at in (ends - left + 0.3, ends - 0.7):  # early, and shortly before the hint expires
        results = fleet.run("requests", count=1, start_at=at, **args)
        assert all(r["answered_by"] == {"backup": 1} for r in results)
        assert llm.request_count("primary") == 1  # only the 429 itself
    results = fleet.run("requests", count=1, start_at=ends + 0.3, **args)
    assert all(r["answered_by"] == {"primary": 1} for r in results)
    assert llm.request_count("primary") == 1 + PROCESSES


def test_an_answer_cached_by_one_process_is_a_hit_in_the_others(
    fleet: Fleet, llm: FakeLLMServer, redis_url: str
) -> None:
    """One process pays for an answer; the seven others get it from the shared cache."""
    llm.set_default("primary", Reply("primary answer"))
    args = common(redis_url, llm, use_cache=True)
    fleet.run("requests", count=1, processes=1, **args)
    results = fleet.run("requests", count=1, **args)
    assert llm.request_count("primary") == 1
    assert sum(r["cached"] for r in results) == PROCESSES


def test_identical_requests_in_eight_processes_make_one_upstream_call(
    fleet: Fleet, llm: FakeLLMServer, redis_url: str
) -> None:
    """Single flight across processes: one leader calls the model, seven get its answer."""
    llm.set_default("primary", Reply("primary answer", latency=0.5))
    args = common(redis_url, llm, use_cache=True)
    fleet.run("requests", count=0, **args)  # each worker builds its manager first
    results = fleet.run("requests", count=1, start_at=soon(), prompt="same question", **args)
    assert llm.request_count("primary") == 1
    assert all(r["answered_by"] == {"primary": 1} for r in results)
    assert sum(r["cached"] for r in results) == PROCESSES - 1


def test_redis_killed_mid_run_fails_no_request_and_sharing_resumes(
    fleet: Fleet, llm: FakeLLMServer, tmp_path: Any
) -> None:
    """Redis dies and comes back while 8 processes serve: no request fails, state is shared
    again afterwards."""
    own = RedisServer(tmp_path)
    own.start()
    try:
        llm.set_default("primary", Reply("primary answer"))
        args = common(own.url, llm, use_cache=True)
        fleet.run("requests", count=0, **args)  # each worker builds its manager first
        number = fleet.send("requests", count=0, for_seconds=3.0, pause=0.02, **args)
        time.sleep(0.8)
        own.kill()
        time.sleep(0.7)
        own.start()
        results = fleet.gather(number)
        assert sum(r["failed"] for r in results) == 0, [r["errors"] for r in results]
        assert all(sum(r["answered_by"].values()) >= 10 for r in results)  # all served
        outages = [(r["degraded"], r["recovered"], r["available"]) for r in results]
        assert all(o == (1, 1, True) for o in outages), outages
        # Shared again: an answer one process pays for is a hit in the seven others.
        fleet.run("requests", count=1, processes=1, prompt="after the restart", **args)
        results = fleet.run("requests", count=1, prompt="after the restart", **args)
        assert calls_for(llm, "primary", "after the restart") == 1
        assert sum(r["cached"] for r in results) == PROCESSES
    finally:
        own.kill()


def test_a_sqlite_cache_shared_by_four_processes_stays_consistent_and_bounded(
    fleet: Fleet, llm: FakeLLMServer, tmp_path: Any
) -> None:
    """Four processes on one SQLite file: one pays for each answer, the others hit it; under
    concurrent writes past max_size the file stays within it, its totals and JSON whole."""
    llm.set_default("primary", Reply("primary answer"))
    path = tmp_path / "llm-cache.db"
    args = common(None, llm, use_cache=True, sqlite=str(path), sqlite_max_size=20)
    shared = [f"shared-{n}" for n in range(10)]
    fleet.run("requests", processes=4, count=0, **args)  # each worker opens the file first
    fleet.run("requests", processes=1, count=0, prompts=shared, **args)
    assert llm.request_count("primary") == 10
    results = fleet.run("requests", processes=4, count=0, prompts=shared, start_at=soon(), **args)
    assert [r["cached"] for r in results] == [10] * 4  # written by one, read by all
    assert llm.request_count("primary") == 10
    fleet.run("requests", processes=4, count=0, own_prompts=15, start_at=soon(), **args)
    assert llm.request_count("primary") == 10 + 4 * 15  # 60 misses, none lost or doubled
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        entries, size = db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM entries"
        ).fetchone()
        assert db.execute("SELECT entries, bytes FROM totals").fetchone() == (entries, size)
        values = [json.loads(value) for (value,) in db.execute("SELECT value FROM entries")]
    assert 0 < entries <= 20  # bounded, though 70 answers were written
    assert all(isinstance(value, dict) for value in values)


def test_the_breaker_scripts_hold_under_a_race_of_eight_processes(
    fleet: Fleet, redis_url: str
) -> None:
    """Hammering one breaker through closed, open, half-open, closed: one trial per window."""
    namespace = f"race-{uuid.uuid4().hex[:10]}"
    start = soon(0.3)
    results = fleet.run(
        "hammer",
        namespace=namespace,
        redis_url=redis_url,
        start_at=start,
        seconds=1.5,
        healthy_at=start + 1.0,
    )
    trials = [generation for r in results for generation in r["trials"]]
    assert len(trials) >= 3  # several recovery windows went by
    assert len(trials) == len(set(trials))  # never two trials in one window
    # Before the model recovers, the fleet is closed only until its first opening: the 3
    # failures that open it, plus at most one call per other process already admitted. An
    # ordinary call let through while open or half-open would add hundreds.
    early = sum(r["early"] for r in results)
    assert 3 <= early <= 3 + PROCESSES - 1, early
    assert all(r["closed"] for r in results)
    state = redis.Redis.from_url(redis_url).hgetall(f"{namespace}:breaker:m")
    assert state[b"s"] == b"0" and state[b"f"] == b"0"
