"""Round trips to Redis per request, counted on the real redis-server (``INFO commandstats``).

The budget (issue 13): a cacheable request that misses and succeeds on its first attempt
costs two round trips (one reads the entry, takes the flight lease and the first model's
admission; one stores the answer and frees the lease), a hit one, each further attempt one
more for its admission (a failure one for its outcome), and a request without the cache one
per attempt. Admissions interrupted on the wire free what they may have been granted.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import pytest
import redis
from redis_server import debug_sleep

from reliable_llm import (
    BreakerPolicy,
    ImagePart,
    LLMManager,
    Message,
    ModelCapabilities,
    ServerError,
    TextPart,
)
from reliable_llm._breaker import Trial
from reliable_llm._cache import prompt_cache_key
from reliable_llm.backends import RedisState
from reliable_llm.backends import _redis_lua as lua
from reliable_llm.backends import _redis_pipeline as pipeline
from reliable_llm.backends._redis_pipeline import ascript, script, void_key
from reliable_llm.testing import FakeClock, ScriptedModel

PNG_B64 = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Trips:
    """Round trips a manager makes to Redis: requests its clients write (a counting
    connection class under redis-py's pools), beside the EVALSHA the server ran (from
    ``INFO commandstats``: scripts cannot call EVALSHA, so these are top-level commands)."""

    def __init__(self, manager: LLMManager, url: str) -> None:
        self.link = manager.shared_state._link  # type: ignore[union-attr]
        self.sent = 0
        self._count(self.link.client.connection_pool, False)
        self.server = redis.Redis.from_url(url)
        # Every script loaded, as in a fleet that has run a while: a first run's NOSCRIPT
        # and SCRIPT LOAD are not what is counted here.
        for source in (*map(vars(lua).get, lua.__all__), *pipeline._SOURCES.values()):
            if isinstance(source, str):
                self.server.script_load(source)
        self.last = (0, self._evalsha())

    def _count(self, pool: Any, asynchronous: bool) -> None:
        base = pool.connection_class
        trips = self
        if asynchronous:

            async def asend(conn: Any, command: Any, check_health: bool = True) -> None:
                trips.sent += 1
                await base.send_packed_command(conn, command, check_health)

            send: Any = asend
        else:

            def send(conn: Any, command: Any, check_health: bool = True) -> None:
                trips.sent += 1
                base.send_packed_command(conn, command, check_health)

        pool.connection_class = type("Counting", (base,), {"send_packed_command": send})

    def count_async(self) -> None:
        """Count the running loop's asyncio client too (call before its first request)."""
        client, _ = self.link._aclient()
        self._count(client.connection_pool, True)

    def _evalsha(self) -> int:
        stats = self.server.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {"calls": 0})["calls"])

    def since(self) -> tuple[int, int]:
        """(round trips, EVALSHA on the server) since the last call."""
        now = (self.sent, self._evalsha())
        delta = (now[0] - self.last[0], now[1] - self.last[1])
        self.last = now
        return delta


def manager_on(url: str, namespace: str, **kwargs: Any) -> LLMManager:
    """A manager sharing state on ``url``: primary, then backup."""
    manager = LLMManager(
        max_retries=0,
        clock=FakeClock(),
        random=lambda: 0.0,
        shared_state=RedisState(url, namespace=namespace, timeout=0.5),
        breaker=BreakerPolicy(failure_threshold=3, recovery_timeout=30.0),
        **kwargs,
    )
    manager.register_model("primary", ScriptedModel(default="p"))
    manager.register_model("backup", ScriptedModel(default="b"))
    manager.set_fallback_chain(["backup"])
    return manager


def half_open(url: str, namespace: str, model: str) -> None:
    """Leave the shared breaker of ``model`` open with its window over: next comes the trial."""
    redis.Redis.from_url(url).hset(f"{namespace}:breaker:{model}", mapping={"s": 1, "g": 1, "u": 0})


def trial_key(namespace: str, model: str = "primary") -> str:
    return f"{namespace}:trial:{model}"


def lease_key(namespace: str, prompt: str, model: str = "primary") -> str:
    return f"{namespace}:flight:{prompt_cache_key(model, prompt)}"


def test_a_miss_costs_two_round_trips_and_a_hit_one(redis_url: str, namespace: str) -> None:
    """Sync, cache on: a miss answered by its first attempt is 2 EVALSHA, a hit 1, nothing else."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    manager.generate("warm up")  # connections opened, scripts loaded
    trips.since()
    assert manager.generate("q") == "p"
    assert trips.since() == (2, 2)
    response = manager.chat("q")
    assert response.cached and response.text == "p"
    assert trips.since() == (1, 1)
    raw = redis.Redis.from_url(redis_url)
    assert raw.exists(lease_key(namespace, "q")) == 0  # the lease was freed with the write
    assert raw.exists(f"{namespace}:cache:{prompt_cache_key('primary', 'q')}") == 1


async def test_async_a_miss_costs_two_round_trips_and_a_hit_one(
    redis_url: str, namespace: str
) -> None:
    """Async (the asyncio client), cache on: a miss is 2 round trips, a hit 1."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    trips.count_async()
    try:
        await manager.agenerate("warm up")
        trips.since()
        assert await manager.agenerate("q") == "p"
        assert trips.since() == (2, 2)
        assert (await manager.achat("q")).cached
        assert trips.since() == (1, 1)
    finally:
        await manager.aclose()


def test_without_the_cache_each_attempt_costs_one_round_trip(
    redis_url: str, namespace: str
) -> None:
    """Cache off: one admission per attempt; a failed attempt adds its outcome, the fallback
    its own admission."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    manager.generate("warm up", use_cache=False)
    trips.since()
    for _ in range(3):
        assert manager.generate("q", use_cache=False) == "p"
    assert trips.since() == (3, 3)
    manager.register_model("primary", ScriptedModel([ServerError("down")]), replace=True)
    assert manager.generate("q", use_cache=False) == "b"
    assert trips.since() == (3, 3)  # primary's admission and failure, backup's admission


def test_a_fallback_costs_one_more_round_trip_for_its_admission(
    redis_url: str, namespace: str
) -> None:
    """Cache on, primary fails, backup answers: begin, primary's failure, backup's admission,
    finish: 4 round trips; the answer is cached for the fleet."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    manager.generate("warm up")
    manager.register_model("primary", ScriptedModel([ServerError("down")]), replace=True)
    trips.since()
    assert manager.generate("q") == "b"
    assert trips.since() == (4, 4)
    assert manager.chat("q").cached


def test_a_hit_takes_no_trial(redis_url: str, namespace: str) -> None:
    """A cache hit while the first model awaits its trial leaves the trial to the next caller."""
    manager = manager_on(redis_url, namespace)
    manager.generate("q")
    half_open(redis_url, namespace, "primary")
    assert manager.chat("q").cached
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "primary", BreakerPolicy(), FakeClock(), None
    )
    assert isinstance(other.admit(5.0), Trial)


def test_a_follower_takes_no_trial(redis_url: str, namespace: str) -> None:
    """A begin that finds another process leading takes neither the lease nor the trial."""
    state = RedisState(redis_url, namespace=namespace, timeout=0.5)
    manager = LLMManager(shared_state=state, clock=FakeClock())
    manager.register_model("primary", ScriptedModel(default="p"))
    raw = redis.Redis.from_url(redis_url)
    key = prompt_cache_key("primary", "q")
    raw.set(lease_key(namespace, "q"), "another-process", px=60_000)
    half_open(redis_url, namespace, "primary")
    breaker = manager._registry.models["primary"].breaker
    begun = state.flight().begin(key, manager.cache, breaker, 5.0)  # type: ignore[arg-type]
    assert begun is not None and begun.entry is None and begun.token is None
    assert begun.pre is None
    assert raw.exists(trial_key(namespace)) == 0
    assert raw.get(lease_key(namespace, "q")) == b"another-process"


def test_a_pre_granted_trial_the_engine_skips_is_freed_at_once(
    redis_url: str, namespace: str
) -> None:
    """A trial granted with the request's first round trip, for a model the request then
    skips (it cannot take an image), frees the fleet's slot when the request ends."""
    manager = manager_on(redis_url, namespace)
    manager.register_model(
        "primary", ScriptedModel(default="p", capabilities=ModelCapabilities()), replace=True
    )
    half_open(redis_url, namespace, "primary")
    image = ImagePart(data=PNG_B64, media_type="image/png")
    assert manager.chat([Message.user([TextPart("look"), image])]).text == "b"
    assert redis.Redis.from_url(redis_url).exists(trial_key(namespace)) == 0
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "primary", BreakerPolicy(), FakeClock(), None
    )
    assert isinstance(other.admit(5.0), Trial)


def test_a_pre_granted_trial_goes_to_the_first_attempt(redis_url: str, namespace: str) -> None:
    """The trial granted with the first round trip is the first attempt's: it closes the
    fleet's breaker, and no other admission is asked for."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    manager.generate("warm up")
    half_open(redis_url, namespace, "primary")
    trips.since()
    assert manager.generate("q") == "p"
    # begin (with the trial), its success, the release of the decided trial (NEUTRAL, a
    # no-op in Redis), finish: no admission of its own
    assert trips.since() == (4, 4)
    raw = redis.Redis.from_url(redis_url)
    assert raw.hget(f"{namespace}:breaker:primary", "s") == b"0"
    assert raw.exists(trial_key(namespace)) == 0


def test_a_late_command_of_an_abandoned_caller_grants_nothing(
    redis_url: str, namespace: str
) -> None:
    """VOID reaching Redis before the abandoned BEGIN or ADMIT (another connection): the
    late command takes neither the lease nor the trial; the next caller gets both."""
    state = RedisState(redis_url, namespace=namespace, timeout=0.5)
    link = state._link
    half_open(redis_url, namespace, "primary")
    breaker = state.breaker("primary", BreakerPolicy(), FakeClock(), None)
    keys = breaker.admission_keys()
    assert keys is not None
    token = link.token()
    script(link, "VOID")(keys=(void_key(link, token), keys[1]), args=(token, 5000))
    cache = f"{namespace}:cache:k"
    lease = f"{namespace}:flight:k"
    late = script(link, "BEGIN")(
        keys=(cache, lease, *keys, void_key(link, token)), args=(token, 5000, 5000)
    )
    assert [int(x) for x in late] == [3]
    late = script(link, "GUARDED_ADMIT")(keys=(*keys, void_key(link, token)), args=(5000, token))
    assert int(late[0]) == 1
    raw = redis.Redis.from_url(redis_url)
    assert raw.exists(lease, trial_key(namespace)) == 0
    assert isinstance(breaker.admit(5.0), Trial)


async def _settled(manager: LLMManager) -> None:
    """Wait (up to 2 s) until the tasks this loop sent to Redis are done."""
    link = manager.shared_state._link  # type: ignore[union-attr]
    for _ in range(2000):
        if not link._tasks:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("tasks still on their way to Redis after 2 s")


@pytest.mark.parametrize("cached", [True, False], ids=["begin", "admit"])
async def test_a_task_cancelled_on_the_wire_frees_its_trial_and_lease(
    redis_url: str, namespace: str, cached: bool
) -> None:
    """A request cancelled while its begin (cache on) or admission (cache off) waits on a
    slow Redis frees the trial and the lease it was granted: the next caller gets the trial
    at once, not after the lease expires."""
    manager = manager_on(redis_url, namespace)
    await manager.agenerate("warm up", use_cache=cached)
    half_open(redis_url, namespace, "primary")
    sleeper = debug_sleep(redis_url, 0.3)
    task = asyncio.create_task(manager.agenerate("q", use_cache=cached))
    await asyncio.sleep(0.05)  # its round trip is on the wire
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(sleeper.join, 5)
    await _settled(manager)
    raw = redis.Redis.from_url(redis_url)
    assert raw.exists(trial_key(namespace), lease_key(namespace, "q")) == 0
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "primary", BreakerPolicy(), FakeClock(), None
    )
    assert isinstance(other.admit(5.0), Trial)
    await manager.aclose()


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_a_keyboard_interrupt_on_the_wire_frees_the_trial(redis_url: str, namespace: str) -> None:
    """Ctrl-C while a sync admission waits on a slow Redis: the trial it was granted is freed
    before KeyboardInterrupt reaches the caller."""
    manager = manager_on(redis_url, namespace)
    manager.generate("warm up", use_cache=False)
    half_open(redis_url, namespace, "primary")
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    sleeper = debug_sleep(redis_url, 0.3)
    timer = threading.Timer(0.05, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            manager.generate("q", use_cache=False)
    finally:
        timer.join()
        sleeper.join(5)
    assert redis.Redis.from_url(redis_url).exists(trial_key(namespace)) == 0
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "primary", BreakerPolicy(), FakeClock(), None
    )
    assert isinstance(other.admit(5.0), Trial)


async def test_async_scripts_of_the_pipeline_run_on_the_asyncio_client(
    redis_url: str, namespace: str
) -> None:
    """The async begin runs on the loop's asyncio client: a blocking script is never called."""
    manager = manager_on(redis_url, namespace)
    link = manager.shared_state._link  # type: ignore[union-attr]

    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a blocking Redis call ran on the event loop")

    for name in ("BEGIN", "FINISH", "GUARDED_ADMIT", "VOID"):
        link.scripts[f"pipeline.{name}"] = blocking
    link.client.get = link.client.set = blocking
    try:
        assert await manager.agenerate("q") == "p"
        assert (await manager.achat("q")).cached
        assert await ascript(link, "VOID", (void_key(link, "t"),), ("t", 10)) == 0
    finally:
        await manager.aclose()


def test_an_admission_that_timed_out_grants_nothing_when_it_runs_late(
    redis_url: str, namespace: str
) -> None:
    """A sync admission given up after ``timeout`` (Redis busy) still reaches Redis later:
    the request goes on in-process at once, and the late admission takes no trial."""
    manager = LLMManager(
        clock=FakeClock(), shared_state=RedisState(redis_url, namespace=namespace, timeout=0.1)
    )
    manager.register_model("primary", ScriptedModel(default="p"))
    manager.generate("warm up", use_cache=False)
    half_open(redis_url, namespace, "primary")
    link = manager.shared_state._link  # type: ignore[union-attr]
    sleeper = debug_sleep(redis_url, 0.4)
    try:
        assert manager.generate("q", use_cache=False) == "p"  # Redis timed out: in-process
    finally:
        sleeper.join(5)
    raw = redis.Redis.from_url(redis_url)
    voided = f"{namespace}:void:{link._prefix}*"
    for _ in range(200):  # the void is sent from a thread; bounded wait for it
        if raw.keys(voided):
            break
        time.sleep(0.005)
    assert raw.keys(voided)
    assert raw.exists(trial_key(namespace)) == 0
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "primary", BreakerPolicy(), FakeClock(), None
    )
    assert isinstance(other.admit(5.0), Trial)


def test_a_stream_miss_costs_two_round_trips_and_a_hit_one(redis_url: str, namespace: str) -> None:
    """Streams: begin (entry and first admission, no flight lease) and the write on a miss;
    the begin alone on a hit."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    "".join(c.text for c in manager.stream("warm up"))
    trips.since()
    assert "".join(c.text for c in manager.stream("q")) == "p"
    assert trips.since() == (2, 1)  # BEGIN, then SET of the answer
    assert redis.Redis.from_url(redis_url).exists(lease_key(namespace, "q")) == 0
    assert "".join(c.text for c in manager.stream("q")) == "p"
    assert trips.since() == (1, 1)


async def test_async_a_stream_miss_costs_two_round_trips_and_a_hit_one(
    redis_url: str, namespace: str
) -> None:
    """Async streams: 2 round trips on a miss, 1 on a hit."""
    manager = manager_on(redis_url, namespace)
    trips = Trips(manager, redis_url)
    trips.count_async()
    try:
        assert "".join([c.text async for c in manager.astream("warm up")]) == "p"
        trips.since()
        assert "".join([c.text async for c in manager.astream("q")]) == "p"
        assert trips.since() == (2, 1)
        assert "".join([c.text async for c in manager.astream("q")]) == "p"
        assert trips.since() == (1, 1)
    finally:
        await manager.aclose()


def test_a_stream_pre_granted_trial_the_engine_skips_is_freed(
    redis_url: str, namespace: str
) -> None:
    """A stream whose first model is skipped (it cannot take an image) frees the trial its
    begin was granted, once the stream ends."""
    manager = manager_on(redis_url, namespace)
    manager.register_model(
        "primary", ScriptedModel(default="p", capabilities=ModelCapabilities()), replace=True
    )
    half_open(redis_url, namespace, "primary")
    image = ImagePart(data=PNG_B64, media_type="image/png")
    chunks = manager.stream([Message.user([TextPart("look"), image])])
    assert "".join(c.text for c in chunks) == "b"
    other = RedisState(redis_url, namespace=namespace, timeout=0.5).breaker(
        "primary", BreakerPolicy(), FakeClock(), None
    )
    assert isinstance(other.admit(5.0), Trial)


def test_a_hit_this_request_validators_reject_stays_for_the_others(
    redis_url: str, namespace: str
) -> None:
    """An entry read with the begin that this request's validators reject is a miss for it
    (it goes upstream, and here fails), and stays a hit for requests without them."""
    from reliable_llm import AllModelsFailedError, ChatResponse, InvalidResponseError

    def no_p(response: ChatResponse) -> None:
        if response.text == "p":
            raise InvalidResponseError("no p please", reason="p")

    manager = manager_on(redis_url, namespace)
    manager.register_model("backup", ScriptedModel(default="p"), replace=True)
    assert manager.generate("q") == "p"
    with pytest.raises(AllModelsFailedError):
        manager.chat("q", validators=[no_p])
    lax = manager.chat("q")
    assert lax.cached and lax.text == "p"


def test_a_windowed_breaker_is_pre_admitted_too(redis_url: str, namespace: str) -> None:
    """A model with a failure-rate rule: its admission rides in the begin; its outcome goes
    to the fleet's window (one round trip), then the finish: 3 in all."""
    manager = manager_on(redis_url, namespace)
    manager.register_model(
        "primary",
        ScriptedModel(default="p"),
        breaker=BreakerPolicy(failure_rate_threshold=50.0, minimum_number_of_calls=5),
        replace=True,
    )
    trips = Trips(manager, redis_url)
    manager.generate("warm up")
    trips.since()
    assert manager.generate("q") == "p"
    assert trips.since() == (3, 3)
