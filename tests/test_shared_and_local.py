"""Shared calls share successes only, as separate objects; local mistakes stay local; the cache
may fail without failing a request."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from drivers import Ask

from reliable_llm import (
    AllModelsFailedError,
    CachePolicy,
    CallableProvider,
    ChatResponse,
    ConfigurationError,
    InMemoryCache,
    LLMManager,
    ServerError,
    ToolCall,
    Usage,
)
from reliable_llm.events import CacheError, Event
from reliable_llm.testing import FakeClock, ScriptedModel

# -- single flight ---------------------------------------------------------------------------


def test_concurrent_identical_chats_get_their_own_objects() -> None:
    """Two identical concurrent chats share one upstream call but not its objects."""
    gate = threading.Event()
    calls: list[str] = []

    def model(prompt: str, **kwargs: Any) -> ChatResponse:
        calls.append(prompt)
        gate.wait(5)
        return ChatResponse(
            "", (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),), "tool_calls", Usage(3, 4)
        )

    manager = LLMManager()
    manager.register_model("m", model)
    results: list[ChatResponse] = []
    threads = [
        threading.Thread(target=lambda: results.append(manager.chat("weather?"))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    while not calls:
        threading.Event().wait(0.001)
    threading.Event().wait(0.05)  # let the second caller join the flight
    gate.set()
    for thread in threads:
        thread.join(5)
    first, second = results
    assert calls == ["weather?"]
    assert first.tool_calls[0] is not second.tool_calls[0]
    assert first.usage is not second.usage
    first.tool_calls[0].arguments = "{}"
    assert first.usage is not None
    first.usage.input_tokens = 99
    assert second.tool_calls[0].args == {"city": "Paris"}
    assert second.usage == Usage(3, 4)


@pytest.mark.parametrize("callers", [2, 50])
def test_one_lookup_counts_one_hit_or_one_miss(callers: int) -> None:
    """N identical concurrent achats: one miss (the leader), N-1 hits."""
    manager = LLMManager()
    started = asyncio.Event

    async def scenario() -> list[str]:
        gate = started()

        async def model(prompt: str, **kwargs: Any) -> str:
            await gate.wait()
            return "answer"

        manager.register_model("m", model)
        tasks = [asyncio.create_task(manager.agenerate("same")) for _ in range(callers)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(scenario()) == ["answer"] * callers
    cache = manager.get_metrics()["cache"]
    assert (cache["hits"], cache["misses"]) == (callers - 1, 1)
    assert cache["hit_rate"] == pytest.approx((callers - 1) / callers)
    assert manager.get_metrics()["total_requests"] == callers


def test_followers_of_a_failed_leader_run_their_own_plan() -> None:
    """A leader's failure is not shared: the follower makes its own call and succeeds."""
    manager = LLMManager(max_retries=0)
    outcomes = iter([ServerError("flaky"), "second try"])
    gate = asyncio.Event

    async def scenario() -> list[object]:
        opened = gate()

        async def model(prompt: str, **kwargs: Any) -> str:
            await opened.wait()
            outcome = next(outcomes)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        manager.register_model("m", model)
        tasks = [asyncio.create_task(manager.agenerate("same")) for _ in range(2)]
        for _ in range(5):
            await asyncio.sleep(0)
        opened.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, second = asyncio.run(scenario())
    assert isinstance(first, Exception)
    assert second == "second try"


# -- local errors ----------------------------------------------------------------------------


def test_a_prompt_that_cannot_be_encoded_is_refused_before_any_call(
    ask: Ask, manager: LLMManager, clock: FakeClock
) -> None:
    """A lone surrogate raises ConfigurationError at once: no call, no retry, no breaker."""
    model = ScriptedModel()
    manager.register_model("m", model)
    for _ in range(6):
        with pytest.raises(ConfigurationError, match="unpaired surrogate U\\+DCFF"):
            ask("bad \udcff text")
    assert model.call_count == 0
    assert clock.sleeps == []
    assert manager.get_model_info("m")["breaker"]["state"] == "closed"


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": math.nan},
        {"top_p": math.inf},
        {"custom": {"limit": math.inf}},
        {"temperature": "hot"},
        {"stop": 5},
        {"seed": 1.5},
    ],
)
def test_malformed_parameters_are_refused_naming_them(
    params: dict[str, Any], manager: LLMManager
) -> None:
    """NaN, infinity, wrong types: a ConfigurationError naming the parameter, caching on or off."""
    model = ScriptedModel()
    manager.register_model("m", model)
    (name,) = params
    for use_cache in (True, False):
        with pytest.raises(ConfigurationError, match=name):
            manager.chat("hi", use_cache=use_cache, **params)
    assert model.call_count == 0


def test_a_circular_parameter_is_refused(manager: LLMManager) -> None:
    """A self-referencing parameter is refused with caching off too."""
    loop: dict[str, Any] = {}
    loop["self"] = loop
    manager.register_model("m", ScriptedModel())
    with pytest.raises(ConfigurationError, match="custom"):
        manager.chat("hi", use_cache=False, custom=loop)


@pytest.mark.parametrize("flag", ["enable_caching", "use_cache"])
def test_non_bool_flags_are_refused(flag: str) -> None:
    """enable_caching="no" / use_cache="no" raise instead of silently leaving caching on."""
    with pytest.raises(ConfigurationError, match=flag):
        if flag == "enable_caching":
            LLMManager(enable_caching="no")  # type: ignore[arg-type]
        else:
            manager = LLMManager()
            manager.register_model("m", ScriptedModel())
            manager.chat("hi", use_cache="no")  # type: ignore[arg-type]


def test_a_callable_that_cannot_take_a_parameter_fails_at_once(
    ask: Ask, manager: LLMManager, clock: FakeClock
) -> None:
    """lambda prompt: ... with temperature=0: ConfigurationError before any call or retry."""
    calls: list[str] = []
    manager.register_model("m", lambda prompt: calls.append(prompt) or "ok")
    with pytest.raises(ConfigurationError, match=r"does not accept \['temperature'\]"):
        ask("hi", temperature=0)
    assert calls == []
    assert clock.sleeps == []
    assert manager.get_model_info("m")["breaker"]["failure_count"] == 0
    assert ask("hi").text == "ok"


def test_a_callable_without_a_prompt_parameter_is_refused_at_registration() -> None:
    """A callable that cannot take a prompt is refused by register_model."""
    with pytest.raises(ConfigurationError, match="fn\\(prompt, \\*\\*kwargs\\)"):
        LLMManager().register_model("m", lambda: "x")


# -- the cache may fail ----------------------------------------------------------------------


class _Backend:
    """A backend that fails or returns junk on demand."""

    def __init__(self, get: Any = None, set_fails: bool = False) -> None:
        self.get_result = get
        self.set_fails = set_fails
        self.deleted: list[str] = []
        self.stored: dict[str, Mapping[str, Any]] = {}

    def get(self, key: str) -> Mapping[str, Any] | None:
        if isinstance(self.get_result, BaseException):
            raise self.get_result
        return self.get_result

    def set(self, key: str, value: Mapping[str, Any], ttl: float | None) -> None:
        if self.set_fails:
            raise ConnectionError("cache down")
        self.stored[key] = value

    def delete(self, key: str) -> None:
        self.deleted.append(key)

    def clear(self) -> None:
        self.stored.clear()

    def __len__(self) -> int:
        return len(self.stored)


def _with(backend: _Backend, events: list[Event]) -> LLMManager:
    manager = LLMManager(cache_backend=backend, hooks=[events.append])
    manager.register_model("m", ScriptedModel(default="fresh"))
    return manager


def test_a_failing_get_is_a_miss_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """get raising ConnectionError: the model answers, a CacheError event and warning report it."""
    events: list[Event] = []
    manager = _with(_Backend(get=ConnectionError("refused")), events)
    with caplog.at_level(logging.WARNING, logger="reliable_llm"):
        assert manager.generate("hi") == "fresh"
    assert [e.operation for e in events if isinstance(e, CacheError)] == ["get", "get"]
    assert "cache get failed" in caplog.text


def test_a_failing_set_keeps_the_answer() -> None:
    """set raising: the paid-for answer is still returned; the loss is reported."""
    events: list[Event] = []
    manager = _with(_Backend(set_fails=True), events)
    assert manager.chat("hi").text == "fresh"
    assert [e.operation for e in events if isinstance(e, CacheError)] == ["set"]


@pytest.mark.parametrize("junk", [{"text": 42}, {"nope": 1}, {"text": "x", "usage": "many"}])
def test_a_malformed_entry_is_a_miss_and_evicted(junk: dict[str, Any]) -> None:
    """A stored value that is not an answer is never returned: a miss, evicted."""
    events: list[Event] = []
    backend = _Backend(get=junk)
    manager = _with(backend, events)
    assert manager.generate("hi") == "fresh"
    assert backend.deleted
    assert any(isinstance(e, CacheError) and e.operation == "decode" for e in events)


def test_the_in_memory_cache_is_bounded_in_bytes(clock: FakeClock) -> None:
    """max_bytes evicts the least recently used entries; an oversized entry is not kept."""
    cache = InMemoryCache(CachePolicy(max_size=100, max_bytes=50), clock)
    cache.set("a", {"text": "x" * 10}, None)
    cache.set("b", {"text": "y" * 10}, None)
    assert cache.get("a") is not None and cache.get("b") is not None
    cache.set("c", {"text": "z" * 10}, None)  # three entries of 21 bytes exceed 50
    assert cache.get("a") is None and cache.get("c") is not None
    cache.set("big", {"text": "w" * 100}, None)
    assert cache.get("big") is None
    assert cache.size_bytes <= 50


def test_a_follower_waits_no_longer_than_its_own_deadline() -> None:
    """A follower of a leader that overruns gives up at its own deadline, not the leader's."""
    manager = LLMManager(max_retries=0)
    release = threading.Event()
    started = threading.Event()

    def overrunning(prompt: str, **kwargs: Any) -> str:
        started.set()
        release.wait(5)  # ignores its timeout: it vouched for itself and lied
        return "late"

    manager.register_model("m", CallableProvider(overrunning, enforces_timeout=True))
    leader = threading.Thread(target=lambda: manager.chat("same", timeout=0.3))
    leader.start()
    started.wait(5)
    begin = time.monotonic()
    try:
        with pytest.raises(AllModelsFailedError) as caught:
            manager.chat("same", timeout=0.3)  # the same plan: it follows the leader
        waited = time.monotonic() - begin
    finally:
        release.set()
        leader.join(5)
    assert caught.value.deadline_exceeded
    assert 0.25 <= waited < 2.5  # not the 5 s the leader takes


@pytest.mark.parametrize(
    ("messages", "params", "named"),
    [
        ("hi", {"stop": ["\ud800"]}, "stop"),
        ("hi", {"user": "u\ud800"}, "user"),
        ("hi", {"custom": {"k\ud800": 1}}, "custom"),
        ("hi", {"tools": [{"name": "f", "description": "d\ud800"}]}, "tools"),
        ([{"role": "user", "content": "hi", "name": "n\ud800"}], {}, "message name"),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "c\ud800", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "content": "ok", "tool_call_id": "c1"},
            ],
            {},
            "tool call id",
        ),
    ],
)
def test_a_lone_surrogate_anywhere_is_local(
    messages: Any, params: dict[str, Any], named: str, manager: LLMManager
) -> None:
    """Surrogates in parameters, tool definitions, names and tool calls: ConfigurationError
    naming where, before any call."""
    model = ScriptedModel()
    manager.register_model("m", model)
    with pytest.raises(ConfigurationError, match=named):
        manager.chat(messages, use_cache=False, **params)
    assert model.call_count == 0


def test_an_encoding_failure_inside_a_provider_is_local(manager: LLMManager) -> None:
    """A UnicodeEncodeError raised while a model builds its request is the caller's error."""

    def encoding(prompt: str, **kwargs: Any) -> str:
        return "x\ud800".encode().decode()

    manager.register_model("m", encoding)
    manager.register_model("backup", ScriptedModel())
    manager.set_fallback_chain(["backup"])
    with pytest.raises(ConfigurationError, match="cannot be encoded"):
        manager.chat("hi")
    assert manager.get_model_info("m")["breaker"]["failure_count"] == 0


def test_a_cancelled_follower_is_counted() -> None:
    """A caller cancelled while it waits for an identical request's call counts as cancelled."""
    manager = LLMManager()

    async def scenario() -> None:
        gate = asyncio.Event()
        entered = asyncio.Event()

        async def model(prompt: str, **kwargs: Any) -> str:
            entered.set()
            await gate.wait()
            return "answer"

        manager.register_model("m", model)
        leader = asyncio.create_task(manager.agenerate("same"))
        await entered.wait()
        follower = asyncio.create_task(manager.agenerate("same"))
        for _ in range(3):
            await asyncio.sleep(0)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower
        gate.set()
        assert await leader == "answer"

    asyncio.run(scenario())
    metrics = manager.get_metrics()
    assert (metrics["total_requests"], metrics["cancelled_requests"]) == (2, 1)


def test_metrics_survive_a_backend_that_cannot_count() -> None:
    """A backend whose __len__ fails: requests, get_metrics() and the displays still work."""

    class Unreachable(_Backend):
        def __len__(self) -> int:
            raise ConnectionError("redis: connection refused")

    manager = _with(Unreachable(), [])
    assert manager.generate("hi") == "fresh"
    assert manager.get_metrics()["cache"]["size"] is None
    assert "requests" in str(manager)
    assert "<table" in manager._repr_html_()


def test_a_cache_backend_without_the_interface_is_refused() -> None:
    """cache_backend=object() is a ConfigurationError naming the methods it needs."""
    with pytest.raises(ConfigurationError, match="cache_backend must have get"):
        LLMManager(cache_backend=object())  # type: ignore[arg-type]


def test_a_fallback_that_cannot_take_a_parameter_is_found_at_once(clock: FakeClock) -> None:
    """A backup callable without temperature fails the request before any call, naming it."""
    manager = LLMManager(clock=clock)
    primary = ScriptedModel(default=ServerError("down"))
    manager.register_model("primary", primary)
    manager.register_model("backup", lambda prompt: "narrow")
    manager.set_fallback_chain(["backup"])
    with pytest.raises(ConfigurationError, match=r"model 'backup'.*does not accept"):
        manager.chat("hi", temperature=0.2)
    assert primary.call_count == 0
    assert clock.sleeps == []


@pytest.mark.parametrize("messages", [None, 5, b"hi"])
def test_messages_of_the_wrong_type_are_a_clear_error(messages: Any, manager: LLMManager) -> None:
    """chat(None), chat(5), chat(b"hi"): a ConfigurationError naming what messages must be."""
    manager.register_model("m", ScriptedModel())
    with pytest.raises(ConfigurationError, match="messages must be a prompt str"):
        manager.chat(messages)


@pytest.mark.parametrize("hook", [1, "print"])
def test_a_hook_that_is_not_callable_is_refused(hook: Any) -> None:
    """hooks=[1] and add_hook("print") raise instead of failing on every event."""
    with pytest.raises(ConfigurationError, match="hooks must be callables"):
        LLMManager(hooks=[hook])
    with pytest.raises(ConfigurationError, match="hooks must be callables"):
        LLMManager().add_hook(hook)


def test_an_async_hook_is_refused() -> None:
    """An async def hook would never run: refused with the way to do it."""

    async def hook(event: Event) -> None:
        return None

    with pytest.raises(ConfigurationError, match="async function"):
        LLMManager(hooks=[hook])


def test_a_hostile_cached_value_is_a_miss() -> None:
    """A stored mapping that raises when read is a miss, never a failed request."""

    class Hostile(dict):  # type: ignore[type-arg]
        def __getitem__(self, key: object) -> object:
            raise RuntimeError("boom")

        def get(self, key: object, default: object = None) -> object:
            raise RuntimeError("boom")

    events: list[Event] = []
    manager = _with(_Backend(get=Hostile(text="x")), events)
    assert manager.generate("hi") == "fresh"
    assert any(isinstance(e, CacheError) and e.operation == "decode" for e in events)
