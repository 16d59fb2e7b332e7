"""The response cache: hits, keys, TTL, LRU, what is never cached, replay as a stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from drivers import Ask, ask_with
from hypothesis import given
from hypothesis import strategies as st

from reliable_llm import (
    AllModelsFailedError,
    CachePolicy,
    ChatRequest,
    ConfigurationError,
    InMemoryCache,
    LLMManager,
    Message,
    ServerError,
    StreamInterruptedError,
    Tool,
    cache_key,
)
from reliable_llm._cache import prompt_cache_key
from reliable_llm.testing import FakeClock, ScriptedModel, StreamBreak


def test_identical_request_is_served_from_cache(manager: LLMManager, ask: Ask) -> None:
    """The second identical request makes no upstream call and says it was cached."""
    model = ScriptedModel(default="answer")
    manager.register_model("m", model)
    first, second = ask("hi"), ask("hi")
    assert (first.cached, second.cached) == (False, True)
    assert second.text == "answer" and second.model == "m"
    assert model.call_count == 1
    cache = manager.get_metrics()["cache"]
    assert (cache["hits"], cache["misses"], cache["hit_rate"]) == (1, 1, 0.5)


def test_fallback_answer_is_cached_under_the_requested_model(manager: LLMManager, ask: Ask) -> None:
    """When the fallback answered, the repeat is a cache hit that names the fallback."""
    manager.register_model("primary", ScriptedModel(default=ServerError("down")))
    backup = ScriptedModel(default="from backup")
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    ask("hi")
    again = ask("hi")
    assert (again.cached, again.model, backup.call_count) == (True, "backup", 1)


def test_disabled_caching_sends_every_call_upstream(clock: FakeClock, driver: str) -> None:
    """enable_caching=False is a global off switch, even for calls passing use_cache=True."""
    manager = LLMManager(enable_caching=False, clock=clock)
    model = ScriptedModel(default="x")
    manager.register_model("m", model)
    ask_with(driver, manager, "hi")
    ask_with(driver, manager, "hi", use_cache=True)
    assert manager.generate("hi", use_cache=True) == "x"
    assert model.call_count == 3
    assert manager.get_metrics()["cache"]["misses"] == 0


def test_use_cache_false_bypasses_the_cache(manager: LLMManager, ask: Ask) -> None:
    """use_cache=False neither reads nor fills the cache."""
    model = ScriptedModel(default="x")
    manager.register_model("m", model)
    ask("hi")
    assert not ask("hi", use_cache=False).cached
    assert model.call_count == 2
    assert manager.generate("hi", use_cache=False) == "x"
    assert model.call_count == 3


def test_failures_are_never_cached(manager: LLMManager, ask: Ask) -> None:
    """A failed request leaves nothing in the cache; the next identical one goes upstream."""
    model = ScriptedModel(
        [ServerError("a"), ServerError("b"), ServerError("c"), ServerError("d"), "ok"]
    )
    manager.register_model("m", model)
    with pytest.raises(AllModelsFailedError):
        ask("hi")
    assert len(manager.cache) == 0
    assert ask("hi").text == "ok"


def test_interrupted_streams_are_never_cached(manager: LLMManager) -> None:
    """A stream cut mid-answer raises with the partial text and is not cached."""
    model = ScriptedModel([StreamBreak("partial answer", ServerError("cut")), "complete answer"])
    manager.register_model("m", model)
    with pytest.raises(StreamInterruptedError) as caught:
        list(manager.stream("hi"))
    assert caught.value.partial_text == "partial answer"
    assert len(manager.cache) == 0
    assert "".join(c.text for c in manager.stream("hi")) == "complete answer"


def test_completed_stream_is_cached_and_replayed(manager: LLMManager) -> None:
    """A completed stream fills the cache; chat and stream then both get the cached answer."""
    model = ScriptedModel(default="streamed text")
    manager.register_model("m", model)
    assert "".join(c.text for c in manager.stream("hi")) == "streamed text"
    replay = list(manager.stream("hi"))
    assert [c.cached for c in replay] == [True]
    assert replay[-1].finish_reason == "stop"
    assert manager.chat("hi").cached
    assert model.call_count == 1


def test_cache_ttl_expires_on_the_clock(manager: LLMManager, clock: FakeClock) -> None:
    """A per-call cache_ttl expires entries on the injected clock."""
    model = ScriptedModel(default="x")
    manager.register_model("m", model)
    manager.chat("hi", cache_ttl=10)
    clock.advance(9.9)
    assert manager.chat("hi").cached
    clock.advance(0.1)
    assert not manager.chat("hi").cached
    assert model.call_count == 2


def test_clear_cache(manager: LLMManager) -> None:
    """clear_cache() forgets every answer."""
    model = ScriptedModel(default="x")
    manager.register_model("m", model)
    manager.generate("hi")
    manager.clear_cache()
    manager.generate("hi")
    assert model.call_count == 2


def test_lru_evicts_least_recently_used(clock: FakeClock) -> None:
    """With max_size 2, touching 'a' keeps it and evicts 'b'."""
    cache = InMemoryCache(CachePolicy(max_size=2), clock)
    cache.set("a", {"v": 1}, None)
    cache.set("b", {"v": 2}, None)
    assert cache.get("a") == {"v": 1}
    cache.set("c", {"v": 3}, None)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ({"v": 1}, None, {"v": 3})
    assert len(cache) == 2


def test_cached_values_are_json(manager: LLMManager) -> None:
    """What the backend stores round-trips through JSON text unchanged."""
    manager.register_model("m", ScriptedModel(default="x"))
    manager.chat("hi")
    ((_, value, _),) = manager.cache._entries.values()  # type: ignore[attr-defined]
    assert json.loads(json.dumps(value)) == value


def _request(**params: object) -> ChatRequest:
    return ChatRequest(messages=(Message.user("hi"),), **params)  # type: ignore[arg-type]


def test_key_covers_model_messages_and_every_parameter() -> None:
    """Changing the model, a message or any generation parameter changes the key."""
    base = cache_key("m", _request())
    variants = [
        cache_key("other", _request()),
        cache_key("m", ChatRequest(messages=(Message.user("ho"),))),
        cache_key("m", ChatRequest(messages=(Message.system("s"), Message.user("hi")))),
        cache_key("m", _request(temperature=0.5)),
        cache_key("m", _request(max_tokens=5)),
        cache_key("m", _request(top_p=0.5)),
        cache_key("m", _request(stop=("x",))),
        cache_key("m", _request(seed=1)),
        cache_key("m", _request(tools=(Tool("t"),))),
        cache_key("m", _request(tools=(Tool("t"),), tool_choice="t")),
        cache_key("m", _request(response_format={"type": "json_object"})),
        cache_key("m", _request(extra={"logprobs": True})),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_key_ignores_secrets_and_timeouts() -> None:
    """API keys and timeouts passed as extras never reach the key."""
    plain = cache_key("m", _request())
    assert cache_key("m", _request(extra={"api_key": "sk-SECRET", "timeout": 3})) == plain


def test_unserializable_parameter_is_a_clear_error(manager: LLMManager) -> None:
    """A parameter that cannot be sent as JSON is refused, naming it, cached or not."""
    model = ScriptedModel()
    manager.register_model("m", model)
    for use_cache in (True, False):
        with pytest.raises(ConfigurationError, match="custom cannot be sent as JSON"):
            manager.chat("hi", custom=object(), use_cache=use_cache)
    assert model.call_count == 0


# Text a model can be sent: any character but a lone surrogate (refused before any call).
sendable = st.characters().filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(sendable, max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(sendable, max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(sendable, min_size=1, max_size=6), json_values, max_size=5))
def test_key_is_independent_of_dict_order(extra: dict[str, object]) -> None:
    """Property: reordering dict keys in parameters never changes the key."""
    reordered = dict(reversed(list(extra.items())))
    assert cache_key("m", _request(extra=extra)) == cache_key("m", _request(extra=reordered))


@given(st.text(sendable, max_size=30), st.text(sendable, max_size=30))
def test_distinct_prompts_get_distinct_keys(a: str, b: str) -> None:
    """Property: two different prompts never share a key."""
    key_a = cache_key("m", ChatRequest(messages=(Message.user(a),)))
    key_b = cache_key("m", ChatRequest(messages=(Message.user(b),)))
    assert (key_a == key_b) == (a == b)


def test_temperature_int_and_float_share_a_key() -> None:
    """temperature=1 and temperature=1.0 are the same request."""
    assert cache_key("m", _request(temperature=1)) == cache_key("m", _request(temperature=1.0))


@given(st.text(sendable, max_size=40), st.text(min_size=1, max_size=10))
def test_prompt_fast_path_key_equals_the_general_key(prompt: str, model: str) -> None:
    """Property: generate()'s fast key is the canonical key of the same one-message request."""
    request = ChatRequest(messages=(Message.user(prompt),))
    assert prompt_cache_key(model, prompt) == cache_key(model, request)


def test_generate_and_chat_share_cache_entries(manager: LLMManager) -> None:
    """generate('x') and chat('x') are the same request: the second is a cache hit."""
    model = ScriptedModel(default="shared")
    manager.register_model("m", model)
    assert manager.generate("héllo wörld ✓") == "shared"
    assert manager.chat("héllo wörld ✓").cached
    assert model.call_count == 1


def test_an_empty_custom_backend_is_used(clock: FakeClock) -> None:
    """A custom backend is used even while it is empty (len 0), not replaced."""

    class DictBackend:
        def __init__(self) -> None:
            self.entries: dict[str, object] = {}

        def get(self, key: str) -> object:
            return self.entries.get(key)

        def set(self, key: str, value: object, ttl: float | None) -> None:
            self.entries[key] = value

        def clear(self) -> None:
            self.entries.clear()

        def __len__(self) -> int:
            return len(self.entries)

    backend = DictBackend()
    manager = LLMManager(cache_backend=backend, clock=clock)  # type: ignore[arg-type]
    manager.register_model("m", ScriptedModel())
    manager.generate("hi")
    assert len(backend.entries) == 1
    assert manager.chat("hi").cached


def test_a_request_that_just_missed_a_finished_twin_is_not_sent_again(clock: FakeClock) -> None:
    """If the answer lands in the cache between a miss and taking the lead, it is reused."""

    class RacyCache(InMemoryCache):
        miss_once = False

        def get(self, key: str) -> Any:
            if self.miss_once:  # the lookup ran just before an identical request stored it
                self.miss_once = False
                return None
            return super().get(key)

    cache = RacyCache(CachePolicy(), clock)
    manager = LLMManager(cache_backend=cache, clock=clock)
    model = ScriptedModel(default="once")
    manager.register_model("m", model)
    manager.chat("hi")
    cache.miss_once = True
    again = manager.chat("hi")
    assert (again.cached, again.text, model.call_count) == (True, "once", 1)
