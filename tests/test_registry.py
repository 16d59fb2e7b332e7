"""Registration, routing configuration and clear errors for bad input."""

from __future__ import annotations

import pytest

from reliable_llm import (
    CacheKeyError,
    ConfigurationError,
    LLMManager,
    RetryPolicy,
    UnknownModelError,
)
from reliable_llm.testing import ScriptedModel


def test_first_registered_model_becomes_active(manager: LLMManager) -> None:
    """Registering a model makes it usable at once; later ones join the list in order."""
    manager.register_model("a", lambda prompt: "A")
    manager.register_model("b", lambda prompt: "B")
    assert manager.active_model == "a"
    assert manager.list_models() == ["a", "b"]
    assert manager.generate("x") == "A"
    manager.set_active_model("b")
    assert manager.generate("y") == "B"


def test_duplicate_registration_needs_replace(manager: LLMManager) -> None:
    """Registering a name twice fails unless replace=True, which swaps the model."""
    manager.register_model("a", lambda prompt: "old")
    with pytest.raises(ConfigurationError, match="replace=True"):
        manager.register_model("a", lambda prompt: "new")
    manager.register_model("a", lambda prompt: "new", replace=True)
    assert manager.generate("x") == "new"


def test_unknown_model_lists_the_registered_ones(manager: LLMManager) -> None:
    """An unknown name raises UnknownModelError listing what is registered."""
    manager.register_model("gpt", ScriptedModel())
    manager.register_model("claude", ScriptedModel())
    for call in (
        lambda: manager.set_active_model("gemini"),
        lambda: manager.set_fallback_chain(["gemini"]),
        lambda: manager.get_model_info("gemini"),
        lambda: manager.reset_circuit_breaker("gemini"),
        lambda: manager.generate("x", model="gemini"),
    ):
        with pytest.raises(UnknownModelError, match="registered models: 'claude', 'gpt'"):
            call()


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (["a", "a"], "more than once"),
        (["a", ""], "must be model names"),
        ("a", "did you mean"),
        ([None], "must be model names"),
    ],
)
def test_bad_fallback_chains_are_rejected(manager: LLMManager, chain: object, message: str) -> None:
    """Empty, duplicate or non-list chain entries raise a ConfigurationError saying so."""
    manager.register_model("a", ScriptedModel())
    with pytest.raises(ConfigurationError, match=message):
        manager.set_fallback_chain(chain)  # type: ignore[arg-type]


def test_no_active_model(manager: LLMManager) -> None:
    """Generating before registering anything says how to fix it."""
    with pytest.raises(ConfigurationError, match="register_model"):
        manager.generate("hi")


@pytest.mark.parametrize("bad", [42, b"bytes", None])
def test_non_callable_model_is_rejected(manager: LLMManager, bad: object) -> None:
    """A model that is no callable, Provider or model string is refused at registration."""
    with pytest.raises(ConfigurationError, match=r"must be a callable.*'<preset>:<model>'"):
        manager.register_model("m", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "   ", 3])
def test_model_names_must_be_non_empty_strings(manager: LLMManager, name: object) -> None:
    """Model names are non-empty strings."""
    with pytest.raises(ConfigurationError, match="non-empty str"):
        manager.register_model(name, ScriptedModel())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": 3}, "prompt must be a str"),
        ({"prompt": "x", "timeout": -1}, "timeout must be"),
        ({"prompt": "x", "cache_ttl": 0}, "cache_ttl must be"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens must be"),
        ({"prompt": "x", "response_format": "json"}, "response_format must be"),
        ({"prompt": "x", "tools": [{"type": "function", "function": {}}]}, "needs a 'name'"),
        ({"prompt": "x", "tool_choice": "missing_tool"}, "names no tool"),
    ],
)
def test_bad_request_parameters(
    manager: LLMManager, kwargs: dict[str, object], message: str
) -> None:
    """Bad call parameters raise a ConfigurationError naming the problem."""
    model = ScriptedModel()
    manager.register_model("m", model)
    with pytest.raises(ConfigurationError, match=message):
        manager.generate(**kwargs)  # type: ignore[arg-type]
    assert model.call_count == 0


def test_bad_messages(manager: LLMManager) -> None:
    """Malformed messages are rejected before any upstream call."""
    manager.register_model("m", ScriptedModel())
    with pytest.raises(ConfigurationError, match="must not be empty"):
        manager.chat([])
    with pytest.raises(ConfigurationError, match="needs a 'role'"):
        manager.chat([{"content": "hi"}])
    with pytest.raises(ConfigurationError, match="role must be one of"):
        manager.chat([{"role": "robot", "content": "hi"}])
    with pytest.raises(ConfigurationError, match="tool_call_id"):
        manager.chat([{"role": "tool", "content": "42"}])


def test_conflicting_retry_settings(manager: LLMManager) -> None:
    """max_retries and a RetryPolicy that disagree are refused."""
    with pytest.raises(ConfigurationError, match="conflicts"):
        LLMManager(max_retries=5, retry=RetryPolicy(max_retries=1))


def test_cache_key_error_is_a_configuration_error() -> None:
    """CacheKeyError can be caught as ConfigurationError and TypeError."""
    assert issubclass(CacheKeyError, ConfigurationError)
    assert issubclass(CacheKeyError, TypeError)


def test_openai_style_messages_and_tools_are_accepted(manager: LLMManager) -> None:
    """OpenAI-shaped dicts for messages, tool calls and tools work as-is."""
    model = ScriptedModel()
    manager.register_model("m", model)
    manager.chat(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[
            {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
        ],
        tool_choice={"type": "function", "function": {"name": "weather"}},
    )
    request = model.calls[0]
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[2].tool_calls[0].args == {"city": "Paris"}
    assert (request.tools[0].name, request.tool_choice) == ("weather", "weather")


def test_generation_parameters_reach_a_plain_callable(manager: LLMManager) -> None:
    """Seed-style callables receive the prompt and the parameters the caller set."""
    seen: dict[str, object] = {}

    def fn(prompt: str, **kwargs: object) -> str:
        seen.update(kwargs, prompt=prompt)
        return "ok"

    manager.register_model("m", fn)
    manager.generate("hello", temperature=0.2, max_tokens=9, custom_flag=True)
    assert seen == {"prompt": "hello", "temperature": 0.2, "max_tokens": 9, "custom_flag": True}


def test_describe_model_is_cheap_and_follows_re_registration(manager: LLMManager) -> None:
    """describe_model gives name, metadata, provider and capabilities; replacing the model
    gives a new one."""
    manager.register_model("m", ScriptedModel(name="first"), {"context_window": 8192})
    first = manager.describe_model("m")
    assert first == {
        "name": "m",
        "metadata": {"context_window": 8192},
        "provider": {"provider": "first"},
        "capabilities": ScriptedModel().capabilities.to_dict(),
    }
    assert manager.describe_model("m") is first
    with pytest.raises(TypeError):
        first["name"] = "x"  # type: ignore[index]
    manager.register_model(
        "m", ScriptedModel(name="second"), {"context_window": 4096}, replace=True
    )
    second = manager.describe_model("m")
    assert second is not first and second["metadata"] == {"context_window": 4096}


def test_route_lists_active_then_chain_once_each(manager: LLMManager) -> None:
    """manager.route is the active model then the chain, without repeats, and follows changes."""
    for name in ("a", "b", "c"):
        manager.register_model(name, ScriptedModel())
    assert manager.route == ("a",)
    manager.set_fallback_chain(["c", "a", "b"])
    assert manager.route == ("a", "c", "b")
    manager.set_active_model("b")
    assert manager.route == ("b", "c", "a")


@pytest.mark.parametrize("bad", [True, float("nan"), float("inf"), "5", -1])
def test_per_call_seconds_must_be_real_positive_numbers(manager: LLMManager, bad: object) -> None:
    """timeout= and cache_ttl= refuse booleans, NaN, infinity, strings and negatives alike."""
    manager.register_model("m", ScriptedModel())
    for name in ("timeout", "cache_ttl"):
        with pytest.raises(ConfigurationError, match=f"{name} must be a finite number"):
            manager.chat("hi", **{name: bad})
