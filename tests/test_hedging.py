"""Hedged requests: a slow model's request also goes to the next model; the first answer wins.

The hedge delay is wall-clock time (like the per-attempt timeout it races), so these tests
use models that hang until cancelled or released instead of fake-clock latencies; the few
that wait for real keep the wait to tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from drivers import DRIVERS, ask_with

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    HedgePolicy,
    LLMManager,
    Provider,
    ServerError,
)
from reliable_llm.events import Event, HedgeStarted
from reliable_llm.testing import FakeClock, ScriptedModel

_BOUND = 5.0  # seconds a hanging model waits at most, so a broken test cannot hang the suite


class Hanging(Provider):
    """A model that answers only when released (sync) or never (async: until cancelled).

    ``warmups`` are fake-clock latencies of quick answers given before it starts hanging;
    ``failures`` the number of calls that fail at once (503) before it starts hanging.
    """

    enforces_timeout = True  # called directly; the engine bounds it by hedging or abandoning

    def __init__(
        self, clock: FakeClock | None = None, warmups: tuple[float, ...] = (), failures: int = 0
    ) -> None:
        self.clock = clock
        self.warmups = list(warmups)
        self.failures = failures
        self.release = threading.Event()
        self.hanging = threading.Event()
        self.calls = 0
        self._count = threading.Lock()
        self.ended: list[str] = []

    def _warm(self) -> ChatResponse | None:
        if not self.warmups:
            return None
        assert self.clock is not None
        self.clock.advance(self.warmups.pop(0))
        return ChatResponse("warm")

    def _called(self) -> None:
        with self._count:
            self.calls += 1

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        self._called()
        if self.failures:
            self.failures -= 1
            raise ServerError("503", status_code=503)
        self.hanging.set()
        self.release.wait(_BOUND)
        self.ended.append("answered late")
        return ChatResponse("late answer")

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        warm = self._warm()
        if warm is not None:
            return warm
        self._called()
        try:
            await asyncio.sleep(_BOUND)
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        self.ended.append("answered late")
        return ChatResponse("late answer")


def _manager(clock: FakeClock, policy: HedgePolicy, events: list[Event]) -> LLMManager:
    return LLMManager(clock=clock, random=lambda: 0.0, hedging=policy, hooks=[events.append])


def _route(manager: LLMManager, primary: Provider, backup: Provider) -> None:
    manager.register_model("primary", primary)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])


def _hedges(events: list[Event]) -> list[HedgeStarted]:
    return [e for e in events if isinstance(e, HedgeStarted)]


async def test_a_hanging_model_is_hedged_and_cancelled(clock: FakeClock) -> None:
    """async: the backup's answer wins; the primary's call is cancelled, and both attempts are
    in the response and the metrics; one answer is cached."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary, backup = Hanging(), ScriptedModel(default="from backup")
    _route(manager, primary, backup)
    response = await manager.achat("hi")
    assert (response.model, response.text) == ("backup", "from backup")
    assert primary.ended == ["cancelled"]
    outcomes = sorted((a.model, a.succeeded, a.cancelled) for a in response.attempts)
    assert outcomes == [("backup", True, False), ("primary", False, True)]
    assert response.fallback_from == ()
    assert _hedges(events) == [HedgeStarted("primary", "backup", 0.0)]
    metrics = manager.get_metrics()
    assert metrics["hedges"] == {"total": 1, "by_pair": {"primary->backup": 1}}
    assert metrics["models"]["primary"]["cancelled_attempts"] == 1
    assert metrics["models"]["backup"]["success_count"] == 1
    assert (metrics["cache"]["size"], metrics["successful_requests"]) == (1, 1)
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 0


def test_a_hanging_blocking_call_is_abandoned_and_its_trial_freed(clock: FakeClock) -> None:
    """sync: the backup wins while the primary's blocking call hangs; the call is abandoned, its
    attempt recorded as cancelled and its half-open trial freed at once, so the next request
    may take the trial although the abandoned call has not returned."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary, backup = Hanging(failures=1), ScriptedModel(default="from backup")
    manager.register_model(
        "primary", primary, breaker=BreakerPolicy(failure_threshold=1, recovery_timeout=10)
    )
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    try:
        assert manager.chat("outage", use_cache=False).model == "backup"
        assert manager.get_model_info("primary")["breaker"]["state"] == "open"
        clock.advance(10)  # a trial is due
        response = manager.chat("first", use_cache=False)
        assert response.model == "backup"
        cancelled = [a for a in response.attempts if a.model == "primary"]
        assert [a.cancelled for a in cancelled] == [True]
        assert primary.ended == []  # still blocked in its worker thread
        manager.chat("second", use_cache=False)
        assert primary.calls == 3  # the trial was free for the second request
    finally:
        primary.release.set()
    assert manager.get_metrics()["hedges"]["total"] >= 2


def test_a_keyboard_interrupt_while_hedging_abandons_both_calls(clock: FakeClock) -> None:
    """sync: KeyboardInterrupt in the waiting caller abandons both blocking calls; both
    attempts and the request are counted as cancelled."""
    primary, backup = Hanging(), Hanging()

    def interrupt(event: Event) -> None:
        if isinstance(event, HedgeStarted):
            assert backup.hanging.wait(_BOUND)  # the hedge's worker has made its call
            raise KeyboardInterrupt

    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    manager.add_hook(interrupt)
    _route(manager, primary, backup)
    try:
        with pytest.raises(KeyboardInterrupt):
            manager.chat("hi")
    finally:
        primary.release.set()
        backup.release.set()
    metrics = manager.get_metrics()
    assert metrics["cancelled_requests"] == 1
    assert metrics["models"]["primary"]["cancelled_attempts"] == 1
    assert metrics["models"]["backup"]["cancelled_attempts"] == 1
    assert metrics["models"]["backup"]["success_count"] == 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_no_hedge_when_the_model_answers_in_time(clock: FakeClock, driver: str) -> None:
    """A model that answers before the delay is never hedged: one upstream call."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=30), events)
    primary, backup = ScriptedModel(default="quick"), ScriptedModel(default="unused")
    _route(manager, primary, backup)
    response = ask_with(driver, manager, "hi")
    assert (response.model, backup.call_count) == ("primary", 0)
    assert _hedges(events) == []
    assert [a.model for a in response.attempts] == ["primary"]


async def test_a_stream_that_has_not_started_is_hedged(clock: FakeClock) -> None:
    """astream: no first chunk from the primary before the delay, so the backup is asked too;
    its chunks reach the caller and the primary's call is cancelled."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary = Hanging()
    _route(manager, primary, ScriptedModel(default="from the backup"))
    stream = manager.astream("hi")
    text = "".join([chunk.text async for chunk in stream])
    assert text == "from the backup"
    assert stream.response is not None and stream.response.model == "backup"
    assert primary.ended == ["cancelled"]
    outcomes = sorted((a.model, a.cancelled) for a in stream.response.attempts)
    assert outcomes == [("backup", False), ("primary", True)]
    assert _hedges(events) == [HedgeStarted("primary", "backup", 0.0)]


def test_a_blocking_stream_that_has_not_started_is_hedged(clock: FakeClock) -> None:
    """stream: the primary blocks before its first chunk; the backup's stream is relayed and
    the primary's call abandoned (recorded as cancelled)."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary = Hanging()
    _route(manager, primary, ScriptedModel(default="from the backup"))
    try:
        stream = manager.stream("hi")
        assert "".join(chunk.text for chunk in stream) == "from the backup"
        assert stream.response is not None and stream.response.model == "backup"
        cancelled = [a.cancelled for a in stream.response.attempts if a.model == "primary"]
        assert cancelled == [True]
    finally:
        primary.release.set()


async def test_no_hedge_to_an_open_breaker(clock: FakeClock) -> None:
    """The hedge goes only to a model whose breaker admits it: with the backup open there is
    none, the primary answers, and the backup is not listed as given up."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    backup = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", ScriptedModel(default="from primary"))
    manager.register_model("backup", backup, breaker=BreakerPolicy(failure_threshold=1))
    manager.set_fallback_chain(["backup"])
    with pytest.raises(AllModelsFailedError):
        await manager.achat("trip", model="backup", fallback_chain=[])
    response = await manager.achat("hi")
    assert (response.model, response.fallback_from) == ("primary", ())
    assert backup.call_count == 1  # the call that tripped it
    assert _hedges(events) == []


async def test_the_hedge_skips_an_open_breaker_for_the_next_model(clock: FakeClock) -> None:
    """With the second model open, the hedge goes to the third, which answers."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary = Hanging()
    manager.register_model("primary", primary)
    manager.register_model(
        "open", ScriptedModel(default=ServerError("down")), breaker=BreakerPolicy(1)
    )
    manager.register_model("third", ScriptedModel(default="from third"))
    manager.set_fallback_chain(["open", "third"])
    with pytest.raises(AllModelsFailedError):
        await manager.achat("trip", model="open", fallback_chain=[])
    response = await manager.achat("hi")
    assert (response.model, response.fallback_from) == ("third", ("open",))
    assert _hedges(events) == [HedgeStarted("primary", "third", 0.0)]
    assert primary.ended == ["cancelled"]


async def test_a_failed_hedge_leaves_the_first_model_to_answer(clock: FakeClock) -> None:
    """The hedge fails fast and is given up; the first model's answer still wins."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)

    async def slow(prompt: str) -> str:
        await asyncio.sleep(0.02)  # outlasts the backup's failure
        return "from primary"

    manager.register_model("primary", slow)
    manager.register_model(
        "backup", ScriptedModel(default=ServerError("down")), retry=None, breaker=None
    )
    manager.set_fallback_chain(["backup"])
    response = await manager.achat("hi", timeout=5)
    assert (response.model, response.text) == ("primary", "from primary")
    assert response.fallback_from == ("backup",)
    assert response.fallback_reasons == ("backoff_exceeds_deadline",)  # 1 + 2 s, 4 s too long
    assert len(_hedges(events)) == 1


async def test_the_first_valid_answer_wins(clock: FakeClock) -> None:
    """A faster answer that a validator rejects does not win: the slower valid one does."""
    from reliable_llm.validators import not_truncated

    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)

    async def slow(prompt: str) -> str:
        await asyncio.sleep(0.02)  # outlasts the backup's truncated answer
        return "a complete answer"

    manager.register_model("primary", slow)
    manager.register_model(
        "backup", ScriptedModel(default=ChatResponse("a trunc", finish_reason="length"))
    )
    manager.set_fallback_chain(["backup"])
    response = await manager.achat("hi", validators=[not_truncated()], timeout=5)
    assert (response.model, response.text) == ("primary", "a complete answer")
    assert response.fallback_from == ("backup",)
    assert manager.get_metrics()["invalid_responses"]["by_reason"] == {"truncated": 1}


async def test_identical_hedged_requests_share_one_flight(clock: FakeClock) -> None:
    """Single flight holds: two identical concurrent requests make one hedged flight, one
    cache write, and both get the backup's answer."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary, backup = Hanging(), ScriptedModel(default="from backup")
    _route(manager, primary, backup)
    first, second = await asyncio.gather(manager.achat("hi"), manager.achat("hi"))
    assert (first.text, second.text) == ("from backup", "from backup")
    assert (primary.calls, backup.call_count) == (1, 1)
    assert sorted([first.cached, second.cached]) == [False, True]
    assert manager.get_metrics()["cache"]["size"] == 1


async def test_cancelling_a_hedged_request_cancels_both_calls(clock: FakeClock) -> None:
    """A caller that cancels its task cancels both contenders; both attempts and the request
    are counted as cancelled."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary, backup = Hanging(), Hanging()
    _route(manager, primary, backup)
    task = asyncio.create_task(manager.achat("hi"))
    for _ in range(50):  # let both calls start
        if primary.calls and backup.calls:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (primary.ended, backup.ended) == (["cancelled"], ["cancelled"])
    metrics = manager.get_metrics()
    assert metrics["cancelled_requests"] == 1
    assert metrics["models"]["primary"]["cancelled_attempts"] == 1
    assert metrics["models"]["backup"]["cancelled_attempts"] == 1


async def test_the_p95_delay_comes_from_the_models_recent_latency(clock: FakeClock) -> None:
    """delay="p95": the default until min_samples answers, then the model's p95 latency."""
    events: list[Event] = []
    policy = HedgePolicy(delay="p95", default_delay=30.0, min_delay=0.0, min_samples=3)
    manager = _manager(clock, policy, events)
    primary = Hanging(clock, warmups=(0.01, 0.02, 0.03))
    _route(manager, primary, ScriptedModel(default="from backup"))
    for i in range(3):
        assert (await manager.achat(f"warm {i}")).model == "primary"
    clock.advance(1.0)  # the cached delay is refreshed once a second
    response = await manager.achat("now hang")
    assert response.model == "backup"
    assert [e.delay for e in _hedges(events)] == [pytest.approx(0.03)]  # not the 30 s default


async def test_no_hedge_once_the_deadline_has_passed(clock: FakeClock) -> None:
    """A hedge is not started for a request whose deadline has passed."""
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    backup = ScriptedModel(default="unused")

    async def overrun(prompt: str) -> str:
        clock.advance(10)  # past the request's 5 s deadline
        await asyncio.sleep(0.02)
        raise ServerError("too late")

    manager.register_model("primary", overrun)
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    with pytest.raises(AllModelsFailedError) as caught:
        await manager.achat("hi", timeout=5)
    assert caught.value.deadline_exceeded
    assert (backup.call_count, _hedges(events)) == (0, [])


def test_blocking_contenders_are_given_up_at_the_deadline() -> None:
    """sync, real clock: two blocking calls that ignore their timeout are abandoned when the
    request's 50 ms deadline passes; the error says so and both attempts are cancelled."""
    manager = LLMManager(hedging=HedgePolicy(delay=0))
    primary, backup = Hanging(), Hanging()
    _route(manager, primary, backup)
    try:
        started = time.monotonic()
        with pytest.raises(AllModelsFailedError) as caught:
            manager.chat("hi", timeout=0.05)
        assert time.monotonic() - started < 1.0
    finally:
        primary.release.set()
        backup.release.set()
    assert caught.value.deadline_exceeded
    assert [f.model for f in caught.value.failures] == ["primary", "backup"]
    metrics = manager.get_metrics()
    assert metrics["models"]["primary"]["cancelled_attempts"] == 1
    assert metrics["models"]["backup"]["cancelled_attempts"] == 1


def test_concurrent_hedged_requests_add_up(clock: FakeClock) -> None:
    """20 threads and 100 tasks hedging at once: every request answered by the backup, every
    primary call counted once as cancelled, no attempt recorded twice."""
    from concurrent.futures import ThreadPoolExecutor

    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary, backup = Hanging(), ScriptedModel(default="from backup")
    _route(manager, primary, backup)
    try:
        with ThreadPoolExecutor(20) as pool:
            models = list(pool.map(lambda i: manager.chat(f"t{i}").model, range(20)))

        async def tasks() -> list[str]:
            answers = await asyncio.gather(*(manager.achat(f"a{i}") for i in range(100)))
            return [a.model for a in answers]

        models += asyncio.run(tasks())
    finally:
        primary.release.set()
    assert models == ["backup"] * 120
    stats = manager.get_metrics()["models"]
    assert stats["primary"]["cancelled_attempts"] == primary.calls == 120
    assert stats["backup"]["success_count"] == backup.call_count == 120
    assert manager.get_metrics()["hedges"]["total"] == 120


def test_hedging_must_be_a_policy() -> None:
    """Bad hedging configuration is a ConfigurationError naming the parameter."""
    with pytest.raises(ConfigurationError, match="hedging must be a HedgePolicy"):
        LLMManager(hedging=2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"HedgePolicy\.delay must be"):
        HedgePolicy(delay="p99")
    with pytest.raises(ConfigurationError, match=r"HedgePolicy\.min_samples must be"):
        HedgePolicy(min_samples=0)


async def test_hedging_over_the_wire_cancels_the_slower_call() -> None:
    """Real clock, fake server: the primary hangs upstream; 50 ms later the backup is asked,
    its answer returns at once, and the primary's HTTP connection is closed by the client."""
    from reliable_llm.providers import OpenAIProvider
    from reliable_llm.testing.fake_server import FakeLLMServer, Hang, Reply

    with FakeLLMServer() as server:
        server.script("slow-model", Hang(seconds=_BOUND))
        server.script("fast-model", Reply("from the fast model"))
        manager = LLMManager(hedging=HedgePolicy(delay=0.05))
        for name, model in (("primary", "slow-model"), ("backup", "fast-model")):
            provider = OpenAIProvider(model, api_key="sk-test", base_url=server.openai_base_url)
            manager.register_model(name, provider)
        manager.set_fallback_chain(["backup"])
        try:
            started = time.monotonic()
            response = await manager.achat("hi", timeout=10)
            elapsed = time.monotonic() - started
            assert (response.model, response.text) == ("backup", "from the fast model")
            assert 0.05 <= elapsed < 1.0
            assert server.peak_connections == 2
            for _ in range(200):  # the server notices the closed socket on its own thread
                if server.active_connections <= 1:  # the backup's kept-alive connection
                    break
                await asyncio.sleep(0.01)
            assert server.active_connections <= 1
            assert [a.cancelled for a in response.attempts if a.model == "primary"] == [True]
        finally:
            await manager.aclose()


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_both_hedged_attempts_are_traced(clock: FakeClock, driver: str) -> None:
    """Under OpenTelemetry, the winner's and the cancelled loser's attempts each get a span."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import reliable_llm.otel

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    events: list[Event] = []
    manager = _manager(clock, HedgePolicy(delay=0), events)
    primary = Hanging()
    _route(manager, primary, ScriptedModel(default="from backup"))
    reliable_llm.otel.instrument(manager, tracer_provider=tracer_provider)
    try:
        assert ask_with(driver, manager, "hi").model == "backup"
    finally:
        primary.release.set()
    names = sorted(span.name for span in spans.get_finished_spans())
    assert names.count("reliable_llm.request") == 1
    assert len([n for n in names if n.startswith("chat ")]) == 2


async def test_hedging_asks_a_shared_breaker_without_blocking_the_loop(
    clock: FakeClock, redis_url: str, namespace: str
) -> None:
    """async with RedisState: both contenders are admitted through the asyncio client (the
    blocking client never runs on the event loop) and the backup's answer wins."""
    from reliable_llm.backends import RedisState

    shared = RedisState(redis_url, namespace=namespace, timeout=1.0)
    manager = LLMManager(
        clock=clock, hedging=HedgePolicy(delay=0), shared_state=shared, enable_caching=False
    )
    primary, backup = Hanging(), ScriptedModel(default="from backup")
    _route(manager, primary, backup)

    def blocking(*args: object, **kwargs: object) -> object:
        raise AssertionError("a blocking Redis call ran on the event loop")

    shared._link.scripts["ADMIT"] = blocking
    try:
        response = await manager.achat("hi")
        assert (response.model, response.text) == ("backup", "from backup")
        assert primary.ended == ["cancelled"]
        assert sorted(a.model for a in response.attempts) == ["backup", "primary"]
    finally:
        await manager.aclose()
