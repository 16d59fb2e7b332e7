"""Deadlines are wall-clock and ours: a retry that does not fit hands over to the next model,
and slow models (blocking callables, trickling HTTP bodies) are cut off on a real clock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from drivers import Ask

from reliable_llm import (
    AllModelsFailedError,
    ChatResponse,
    FailureReason,
    LLMManager,
    ProviderTimeoutError,
    ServerError,
    StreamInterruptedError,
    TimeoutPolicy,
)
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing import FakeClock, Reply, ScriptedModel
from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    Step,
    anthropic_pings,
    keep_alive_comments,
    trickled_body,
)
from reliable_llm.testing.fake_server import Reply as WireReply


def test_a_retry_that_does_not_fit_hands_over_to_the_backup(
    ask: Ask, manager: LLMManager, clock: FakeClock
) -> None:
    """Primary always 503, timeout=5: after the retries that fit, the backup answers."""
    primary = ScriptedModel(default=ServerError("503", status_code=503))
    manager.register_model("primary", primary)
    manager.register_model("backup", ScriptedModel(default="from backup"))
    manager.set_fallback_chain(["backup"])
    response = ask("hi", timeout=5)
    assert (response.text, response.model) == ("from backup", "backup")
    assert primary.call_count == 3  # at t=0, 1 and 3; the next wait (4 s) does not fit in 2 s
    assert clock.monotonic() == pytest.approx(3.0)
    by_reason = manager.get_metrics()["fallbacks"]["by_reason"]
    assert by_reason == {FailureReason.BACKOFF_EXCEEDS_DEADLINE.value: 1}


def test_deadline_exceeded_means_the_total_deadline(manager: LLMManager, clock: FakeClock) -> None:
    """Only a spent total deadline ends the route, and the error says so."""
    hang = Reply("late", latency=float("inf"))
    manager.register_model("slow", ScriptedModel(default=hang, clock=clock))
    manager.register_model("backup", ScriptedModel(default="unreached"))
    manager.set_fallback_chain(["backup"])
    with pytest.raises(AllModelsFailedError) as caught:
        manager.chat("hi", timeout=2)
    assert caught.value.deadline_exceeded
    assert isinstance(caught.value.errors[0], ProviderTimeoutError)


def test_a_scripted_hang_is_cut_at_the_per_attempt_timeout_on_a_fake_clock(
    ask: Ask, clock: FakeClock
) -> None:
    """A reply slower than per_attempt times out at per_attempt; the backup then answers."""
    manager = LLMManager(
        clock=clock, random=lambda: 0.0, max_retries=0, timeouts=TimeoutPolicy(10, 2)
    )
    manager.register_model(
        "hung", ScriptedModel(default=Reply("late", latency=float("inf")), clock=clock)
    )
    manager.register_model("backup", ScriptedModel(default="on time"))
    manager.set_fallback_chain(["backup"])
    response = manager.chat("hi")
    assert response.model == "backup"
    assert clock.monotonic() == pytest.approx(2.0)
    assert isinstance(response.attempts[0].error, ProviderTimeoutError)


# -- real clock: short and bounded ------------------------------------------------------------

_REAL = TimeoutPolicy(total=3.0, per_attempt=0.5)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets abandoned slow calls finish when the test ends."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_slow_plain_callable_is_cut_off(asynchronous: bool, release: threading.Event) -> None:
    """A sync callable taking 6 s is abandoned after per_attempt; the backup answers at once."""
    manager = LLMManager(max_retries=0, enable_caching=False, timeouts=_REAL)

    def slow(prompt: str, **kwargs: Any) -> str:
        release.wait(6)
        return "late primary"

    manager.register_model("primary", slow)
    manager.register_model("backup", lambda prompt, **kw: "backup")
    manager.set_fallback_chain(["backup"])
    start = time.monotonic()
    text = asyncio.run(manager.agenerate("hi")) if asynchronous else manager.generate("hi")
    elapsed = time.monotonic() - start
    assert text == "backup"
    assert 0.45 <= elapsed < 2.5  # not the 6 s the primary takes


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A started fake server speaking the OpenAI and Anthropic wires."""
    with FakeLLMServer() as fake:
        yield fake


def _sdk_manager(
    kind: str, server: FakeLLMServer, timeouts: TimeoutPolicy, backup: bool = False
) -> tuple[LLMManager, SDKProvider]:
    from reliable_llm.providers import AnthropicProvider, OpenAIProvider

    provider: SDKProvider
    if kind == "openai":
        provider = OpenAIProvider("m", base_url=server.openai_base_url, api_key="sk-test")
    else:
        provider = AnthropicProvider("m", base_url=server.anthropic_base_url, api_key="sk-test")
    manager = LLMManager(max_retries=0, enable_caching=False, timeouts=timeouts)
    manager.register_model("m", provider)
    if backup:
        manager.register_model("backup", ScriptedModel(default="backup answer"))
        manager.set_fallback_chain(["backup"])
    return manager, provider


def _run(manager: LLMManager, provider: SDKProvider, driver: str) -> ChatResponse:
    """One request through ``driver``; the provider's clients are closed afterwards."""

    async def consume() -> ChatResponse:
        try:
            if driver == "async":
                return await manager.achat("hi")
            stream = manager.astream("hi")
            async for _chunk in stream:
                pass
            assert stream.response is not None
            return stream.response
        finally:
            await provider.aclose()

    try:
        if driver == "sync":
            return manager.chat("hi")
        if driver == "stream":
            sync_stream = manager.stream("hi")
            for _chunk in sync_stream:
                pass
            assert sync_stream.response is not None
            return sync_stream.response
        return asyncio.run(consume())
    finally:
        provider.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_trickling_body_is_bounded_by_the_attempt_deadline(
    kind: str, driver: str, server: FakeLLMServer
) -> None:
    """A body sent 8 bytes every 0.4 s fails at per_attempt=1, not after it trickles in."""
    server.set_default(None, trickled_body(WireReply("a slow answer"), bytes_per_write=8))
    manager, provider = _sdk_manager(kind, server, TimeoutPolicy(total=1.5, per_attempt=1.0))
    start = time.monotonic()
    with pytest.raises(AllModelsFailedError) as caught:
        _run(manager, provider, driver)
    elapsed = time.monotonic() - start
    assert isinstance(caught.value.errors[0], ProviderTimeoutError)
    assert 0.9 <= elapsed < 2.5  # not the several seconds the body takes to trickle in


@pytest.mark.parametrize(
    ("kind", "driver", "step"),
    [
        ("openai", "stream", keep_alive_comments(20, WireReply("late"), interval=0.1)),
        ("anthropic", "astream", anthropic_pings(20, WireReply("late"), interval=0.1)),
    ],
)
def test_keep_alives_before_the_first_chunk_do_not_hold_the_attempt_open(
    kind: str, driver: str, step: Step, server: FakeLLMServer
) -> None:
    """SSE comments and Anthropic pings are not chunks: the first-chunk bound still fires and
    the backup answers."""
    server.set_default(None, step)
    timeouts = TimeoutPolicy(total=10, per_attempt=0.6)
    manager, provider = _sdk_manager(kind, server, timeouts, backup=True)
    start = time.monotonic()
    response = _run(manager, provider, driver)
    elapsed = time.monotonic() - start
    assert (response.model, response.text) == ("backup", "backup answer")
    assert isinstance(response.attempts[0].error, ProviderTimeoutError)
    assert 0.55 <= elapsed < 1.9  # not the 2 s of keep-alives before the answer


@pytest.mark.parametrize(("kind", "driver"), [("openai", "astream"), ("anthropic", "stream")])
def test_a_stream_that_goes_idle_is_interrupted(
    kind: str, driver: str, server: FakeLLMServer
) -> None:
    """A stream whose chunks stop coming for longer than stream_idle is interrupted."""
    server.set_default(None, WireReply("one two three four", chunk_size=4, chunk_interval=1.5))
    timeouts = TimeoutPolicy(total=10, per_attempt=5, stream_idle=0.4)
    manager, provider = _sdk_manager(kind, server, timeouts)
    start = time.monotonic()
    with pytest.raises(StreamInterruptedError) as caught:
        _run(manager, provider, driver)
    assert isinstance(caught.value.__cause__, ProviderTimeoutError)
    assert time.monotonic() - start < 1.4  # the first gap, not the whole answer


def test_worker_threads_are_bounded_and_skip_abandoned_calls() -> None:
    """Beyond its limit the pool queues calls; a call abandoned before it starts never runs."""
    from reliable_llm._deadline import _Job, _Workers

    pool = _Workers(limit=2)
    gate = threading.Event()
    running: list[int] = []
    ran: list[int] = []

    def blocking(n: int) -> None:
        running.append(n)
        gate.wait(5)
        ran.append(n)

    jobs = [_Job(lambda n=n: blocking(n)) for n in range(3)]
    for job in jobs:
        pool.submit(job)
    while len(running) < 2:
        gate.wait(0.001)
    assert sorted(running) == [0, 1]  # the third waits for a free worker
    jobs[2].abandoned = True  # its caller timed out meanwhile
    gate.set()
    for job in jobs:
        assert job.done.acquire(timeout=5)
    assert sorted(ran) == [0, 1]


@pytest.mark.parametrize("driver", ["sync", "async", "stream", "astream"])
def test_a_hung_primary_leaves_its_fallback_time_with_default_policies(
    driver: str, clock: FakeClock
) -> None:
    """Defaults (120 s total, 60 s per attempt): a primary that hangs is not retried into the
    backup's time; the backup answers at 60 s."""
    from drivers import ask_with

    manager = LLMManager(clock=clock, random=lambda: 0.0)
    hang = Reply("late", latency=float("inf"))
    manager.register_model("primary", ScriptedModel(default=hang, clock=clock))
    manager.register_model("backup", ScriptedModel(default="from backup"))
    manager.set_fallback_chain(["backup"])
    response = ask_with(driver, manager, "hi")
    assert (response.model, response.text) == ("backup", "from backup")
    assert clock.monotonic() == pytest.approx(60.0)
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {
        FailureReason.BACKOFF_EXCEEDS_DEADLINE.value: 1
    }


def test_the_last_model_still_retries_with_what_is_left(clock: FakeClock) -> None:
    """With no model after it, a model that timed out is retried with the time that remains."""
    manager = LLMManager(clock=clock, random=lambda: 0.0)
    model = ScriptedModel([Reply("late", latency=float("inf"))], default="ok", clock=clock)
    manager.register_model("only", model)
    response = manager.chat("hi")
    assert response.text == "ok"
    assert model.call_count == 2


def test_a_hung_primary_hands_over_in_time_on_a_real_clock(release: threading.Event) -> None:
    """Real clock: a primary that hangs for its whole 0.3 s attempt is not retried into the
    backup's time (0.6 s total); the backup answers after about 0.3 s."""
    from reliable_llm import RetryPolicy

    manager = LLMManager(
        enable_caching=False,
        retry=RetryPolicy(max_retries=3, initial_delay=0.01),
        timeouts=TimeoutPolicy(total=0.6, per_attempt=0.3),
    )

    def hung(prompt: str, **kwargs: Any) -> str:
        release.wait(5)
        return "late"

    manager.register_model("primary", hung)
    manager.register_model("backup", lambda prompt, **kw: "backup")
    manager.set_fallback_chain(["backup"])
    start = time.monotonic()
    response = manager.chat("hi")
    elapsed = time.monotonic() - start
    assert (response.model, len(response.attempts)) == ("backup", 2)
    assert 0.25 <= elapsed < 0.59  # handed over after one attempt, within the total
