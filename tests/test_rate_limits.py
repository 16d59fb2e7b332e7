"""Client-side rate limits per deployment: requests and tokens per minute, skipping a full
deployment, waiting within the deadline, `LocalRateLimitError`, and concurrent callers."""

from __future__ import annotations

import asyncio
import math
import pickle
import threading
from collections import Counter
from typing import Any

import pytest

from reliable_llm import (
    AllModelsFailedError,
    ChatResponse,
    Deployment,
    FailureReason,
    LLMManager,
    LocalRateLimitError,
    Usage,
)
from reliable_llm._gate import estimate_tokens
from reliable_llm._ratelimit import LocalRateLimiter, Refusal
from reliable_llm._types import ChatRequest, Message
from reliable_llm.providers import OpenAIProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer, Reply


def _manager(clock: FakeClock, **kwargs: Any) -> LLMManager:
    return LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False, **kwargs)


def test_requests_per_minute_refuse_the_next_call_and_name_the_wait(clock: FakeClock) -> None:
    """rpm=3: the fourth call within the minute is refused locally, saying when there is room."""
    manager = _manager(clock)
    model = ScriptedModel()
    manager.register_model("g", [Deployment(model, rpm=3)])
    for second in (0.0, 10.0, 20.0):
        clock.advance(second - clock.monotonic())
        manager.chat("hi")
    with pytest.raises(LocalRateLimitError) as caught:
        manager.chat("hi", timeout=5)
    error = caught.value
    assert model.call_count == 3  # nothing was sent
    assert error.limit == "rpm" and error.retry_in == pytest.approx(40.0)
    assert [f.reason for f in error.failures] == [FailureReason.RATE_LIMITED_LOCALLY]
    assert isinstance(error, AllModelsFailedError)
    assert "client-side rpm limit: room in 40s" in str(error)
    info = manager.get_model_info("g[0]")
    assert info["breaker"]["failure_count"] == 0 and info["attempts"] == 3  # not an attempt


def test_a_request_waits_for_capacity_when_it_fits_its_deadline(clock: FakeClock) -> None:
    """The call that would exceed rpm sleeps until the oldest call leaves the minute."""
    manager = _manager(clock)
    model = ScriptedModel()
    manager.register_model("g", [Deployment(model, rpm=2)])
    manager.chat("a")
    clock.advance(15.0)
    manager.chat("b")
    response = manager.chat("c", timeout=120)
    assert response.text == "ok" and model.call_count == 3
    assert clock.sleeps == [pytest.approx(45.0)]
    assert len(response.attempts) == 1 and response.attempts[0].number == 1


def test_a_full_deployment_is_skipped_for_its_sibling(clock: FakeClock) -> None:
    """rpm=5 on each of two deployments: ten calls pass, five each; the 11th is refused."""
    manager = _manager(clock)
    models = [ScriptedModel(), ScriptedModel()]
    manager.register_model("g", [Deployment(m, rpm=5) for m in models])
    served = Counter(manager.chat("hi").model for _ in range(10))
    assert served == {"g[0]": 5, "g[1]": 5}
    with pytest.raises(LocalRateLimitError) as caught:
        manager.chat("hi", timeout=1)
    assert [f.reason for f in caught.value.failures] == [FailureReason.RATE_LIMITED_LOCALLY] * 2
    assert caught.value.retry_in == pytest.approx(60.0)
    assert clock.sleeps == []


def test_a_full_group_falls_back_to_the_next_name_without_waiting(clock: FakeClock) -> None:
    """With another model after the group, a full group hands the request over at once."""
    manager = _manager(clock)
    manager.register_model("g", [Deployment(ScriptedModel(), rpm=1)])
    manager.register_model("backup", ScriptedModel(default="backup"))
    manager.set_fallback_chain(["backup"])
    manager.chat("hi")
    response = manager.chat("hi")
    assert response.model == "backup" and response.fallback_from == ("g[0]",)
    assert clock.sleeps == []
    by_reason = manager.get_metrics()["fallbacks"]["by_reason"]
    assert by_reason == {"rate_limited_locally": 1}


def test_the_wait_goes_to_the_deployment_with_room_soonest(clock: FakeClock) -> None:
    """Two full deployments: the request waits for the one whose minute ends first."""
    manager = _manager(clock)
    manager.register_model(
        "g", [Deployment(ScriptedModel(default=name), rpm=1) for name in ("zero", "one")]
    )
    assert manager.chat("a").text == "zero"  # t=0; random 0.0 picks g[0] first
    clock.advance(1.0)
    assert manager.chat("b").text == "one"  # t=1: g[0] is full, g[1] serves
    with pytest.raises(LocalRateLimitError) as caught:
        manager.chat("c", timeout=1)  # both full; no time to wait
    assert caught.value.retry_in == pytest.approx(59.0)  # g[0] has room first, at t=60
    response = manager.chat("d", timeout=300)
    assert response.text == "zero" and clock.monotonic() == pytest.approx(60.0)


def test_tokens_per_minute_count_the_usage_the_provider_reported() -> None:
    """Over the fake server: each call reserves its estimate, then counts its real usage."""
    clock = FakeClock()
    manager = _manager(clock)
    with FakeLLMServer() as server:
        server.set_default("m", Reply("fine", usage=(10, 20)))  # 30 tokens per call
        provider = OpenAIProvider("m", api_key="sk-test", base_url=server.openai_base_url)
        manager.register_model("g", [Deployment(provider, tpm=1000)])
        estimate = estimate_tokens(ChatRequest((Message.user("hi"),), max_tokens=500))
        assert estimate == 501
        passed = 0
        with pytest.raises(LocalRateLimitError) as caught:
            for _ in range(100):
                manager.chat("hi", max_tokens=500, timeout=1)
                passed += 1
        sent = server.request_count("m")
    # k calls settled at 30 tokens each fit while 30k + 501 <= 1000: k = 0..16.
    assert passed == sent == 17
    assert caught.value.limit == "tpm"
    assert manager.get_model_info("g[0]")["rate_limits"]["tokens"] == 17 * 30


def test_a_request_larger_than_the_token_limit_can_never_wait(clock: FakeClock) -> None:
    """A request whose estimate alone exceeds tpm is refused with retry_in = inf, and the
    message says it can never fit (not "room in inf s")."""
    manager = _manager(clock)
    manager.register_model("g", [Deployment(ScriptedModel(), tpm=100)])
    with pytest.raises(LocalRateLimitError) as caught:
        manager.chat("hi", max_tokens=500, timeout=600)
    assert caught.value.retry_in == math.inf and clock.sleeps == []
    assert "the request alone needs more tokens than the limit allows" in str(caught.value)


def test_rate_limits_hold_with_concurrent_threads(clock: FakeClock) -> None:
    """16 threads x 10 calls against rpm=25 + tpm=2000: exactly the allowed calls go out."""
    manager = _manager(clock)
    model = ScriptedModel(default=ChatResponse("ok", usage=Usage(40, 40)))
    manager.register_model("g", [Deployment(model, rpm=25, tpm=2000)])
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(16)

    def caller() -> None:
        start.wait()
        for _ in range(10):
            try:
                manager.chat("hi", max_tokens=79, timeout=1)  # estimate 80, usage 80
                result = "ok"
            except LocalRateLimitError:
                result = "limited"
            with lock:
                outcomes[result] += 1

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == {"ok": 25, "limited": 135}  # 25 * 80 = 2000 tokens: both limits met
    assert model.call_count == 25


@pytest.mark.parametrize(("limits", "each"), [({"rpm": 40}, 40), ({"rpm": 40, "tpm": 2000}, 25)])
def test_rate_limits_hold_with_concurrent_asyncio_tasks(
    limits: dict[str, int], each: int, clock: FakeClock
) -> None:
    """300 tasks against two deployments: each takes exactly what its limits allow."""
    manager = _manager(clock)
    answer = ChatResponse("ok", usage=Usage(40, 40))  # 80 tokens, as estimated below
    models = [ScriptedModel(default=answer), ScriptedModel(default=answer)]
    manager.register_model("g", [Deployment(m, **limits) for m in models])

    async def one() -> str:
        try:
            return (await manager.achat("hi", max_tokens=79, timeout=1)).model
        except LocalRateLimitError:
            return "limited"

    async def run() -> Counter[str]:
        return Counter(await asyncio.gather(*(one() for _ in range(300))))

    assert asyncio.run(run()) == {"g[0]": each, "g[1]": each, "limited": 300 - 2 * each}
    assert [m.call_count for m in models] == [each, each]


def test_waiting_tasks_never_exceed_the_rate_over_any_minute(clock: FakeClock) -> None:
    """Tasks that wait for capacity: every 60 s window holds at most rpm upstream calls."""
    manager = _manager(clock)
    calls: list[float] = []

    async def model(prompt: str, **kwargs: Any) -> str:
        calls.append(clock.monotonic())
        return "ok"

    manager.register_model("g", [Deployment(model, rpm=5)])

    async def run() -> list[str]:
        results = []
        for wave in range(4):  # sequential waves of concurrent tasks
            results += await asyncio.gather(
                *(manager.agenerate(f"{wave}-{i}", timeout=3600) for i in range(5))
            )
        return results

    assert len(asyncio.run(run())) == 20
    calls.sort()
    assert max(sum(1 for t in calls if s <= t < s + 60) for s in calls) == 5


def test_estimate_counts_text_tool_calls_tools_and_max_tokens() -> None:
    """ceil(chars / 4) + max_tokens: the documented estimate."""
    request = ChatRequest((Message.system("x" * 10), Message.user("y" * 7)), max_tokens=100)
    assert estimate_tokens(request) == 5 + 100
    assert estimate_tokens(ChatRequest((Message.user(""),))) == 1


def test_settling_moves_a_reservation_to_the_reported_tokens(clock: FakeClock) -> None:
    """A reservation settled for fewer tokens frees the difference at once."""
    limiter = LocalRateLimiter(None, 100, clock)
    first = limiter.try_acquire(80)
    assert not isinstance(first, Refusal)
    assert isinstance(limiter.try_acquire(30), Refusal)
    limiter.settle(first, 50)
    second = limiter.try_acquire(30)
    assert not isinstance(second, Refusal) and limiter.usage() == (2, 80)
    clock.advance(60.0)
    limiter.settle(first, 10)  # left the window already: nothing changes
    assert limiter.usage() == (0, 0)
    third = limiter.try_acquire(100)
    limiter.settle(second, 5)  # gone too: the new call's count is untouched
    assert not isinstance(third, Refusal) and limiter.usage() == (1, 100)


def test_local_rate_limit_error_pickles_with_its_facts() -> None:
    """A LocalRateLimitError crosses process boundaries with its limit and wait."""
    error = LocalRateLimitError((), limit="tpm", retry_in=12.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.limit, copy.retry_in, str(copy)) == (
        LocalRateLimitError,
        "tpm",
        12.5,
        str(error),
    )


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_stream_settles_its_tokens_from_the_final_chunk_usage(
    asynchronous: bool, clock: FakeClock
) -> None:
    """A streamed answer counts the usage its last chunk reported, not the estimate."""
    manager = _manager(clock)
    answer = ChatResponse("streamed answer", usage=Usage(7, 5))
    manager.register_model("g", [Deployment(ScriptedModel(default=answer), tpm=10_000)])
    if asynchronous:

        async def run() -> None:
            async for _chunk in manager.astream("hi", max_tokens=900):
                pass

        asyncio.run(run())
    else:
        for _chunk in manager.stream("hi", max_tokens=900):
            pass
    assert manager.get_model_info("g[0]")["rate_limits"] == {
        "rpm": None,
        "tpm": 10_000,
        "requests": 1,
        "tokens": 12,
    }
