"""Both adapters speak one vocabulary: same options, same errors, same metadata keys."""

from __future__ import annotations

import importlib
import inspect
import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_reliable_llm import LangChainChatProvider, ReliableChatModel
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import MockLLM
from llama_index.llms.reliable import LlamaIndexLLMProvider, ReliableLLM

from reliable_llm import ConfigurationError, LLMManager, ServerError, UnknownModelError
from reliable_llm.adapters import OWN_MANAGER_OPTIONS
from reliable_llm.testing import FakeClock, ScriptedModel

#: The facts both adapters report about how an answer was obtained.
KEYS = {
    "model",
    "provider",
    "provider_model",
    "finish_reason",
    "cached",
    "fallback_from",
    "fallbacks",
    "attempts",
}


def _down() -> ScriptedModel:
    return ScriptedModel(default=ServerError("down", status_code=503), name="scripted")


def _up(text: str = "backup answer") -> ScriptedModel:
    return ScriptedModel(default=text, name="scripted")


def _lc(**kwargs: Any) -> tuple[ReliableChatModel, Callable[[], dict[str, Any]]]:
    model = ReliableChatModel(clock=FakeClock(), **kwargs)
    return model, lambda: dict(model.invoke("hi").response_metadata)


def _li(**kwargs: Any) -> tuple[ReliableLLM, Callable[[], dict[str, Any]]]:
    llm = ReliableLLM(clock=FakeClock(), **kwargs)
    return llm, lambda: dict(llm.chat([ChatMessage(role="user", content="hi")]).additional_kwargs)


ADAPTERS = {"langchain": _lc, "llama_index": _li}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_models_dict_alone_falls_back_to_the_other_models_in_order(adapter: str) -> None:
    """``models=`` without ``fallbacks=`` tries the first model, then the others in order."""
    built, ask = ADAPTERS[adapter](models={"primary": _down(), "second": _down(), "third": _up()})
    assert built.manager.route == ("primary", "second", "third")
    info = ask()
    assert (info["model"], info["fallback_from"]) == ("third", ["primary", "second"])


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_model_and_fallbacks_choose_the_route(adapter: str) -> None:
    """``model=`` picks the first model; ``fallbacks=`` replaces the default chain."""
    models = {"a": _up("a"), "b": _up("b"), "c": _up("c")}
    built, _ = ADAPTERS[adapter](models=models, model="b", fallbacks=["c"])
    assert built.manager.route == ("b", "c")


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ConfigurationError, "either manager="),
        ({"manager": LLMManager(), "models": {"a": _up()}}, ConfigurationError, "not both"),
        ({"models": {}}, ConfigurationError, "at least one"),
        ({"models": {"a": _up()}, "model": "b"}, UnknownModelError, "'b'"),
        ({"models": {"a": _up()}, "fallbacks": ["z"]}, UnknownModelError, "'z'"),
        ({"models": {"a": "nopreset:x"}}, ConfigurationError, "known presets"),
        ({"models": {"a": 42}}, ConfigurationError, "must be a callable"),
        (
            {"models": {"a": _up()}, "failure_threshold": 2, "breaker": None, "retry": None},
            None,
            "",
        ),
        (
            {"models": {"a": _up()}, "model_metadata": {"b": {}}},
            ConfigurationError,
            "not in models",
        ),
    ],
)
def test_the_same_mistake_raises_the_same_error(
    adapter: str, kwargs: dict[str, Any], error: type[Exception] | None, message: str
) -> None:
    """Each construction mistake raises the same typed error, naming the fix, in both."""
    if error is None:
        ADAPTERS[adapter](**kwargs)  # a valid combination is accepted by both
        return
    with pytest.raises(error, match=message):
        ADAPTERS[adapter](**kwargs)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_own_manager_options_with_a_shared_manager_are_refused(adapter: str) -> None:
    """Options that configure a built manager are refused next to ``manager=``, by name."""
    manager = LLMManager()
    manager.register_model("a", _up())
    build = ReliableChatModel if adapter == "langchain" else ReliableLLM
    with pytest.raises(ConfigurationError, match=r"\['max_retries'\]"):
        build(manager=manager, max_retries=2)


def test_shared_policy_options_configure_the_built_manager_alike() -> None:
    """max_retries / failure_threshold / recovery_timeout give both managers one policy."""
    options = {"max_retries": 1, "failure_threshold": 2, "recovery_timeout": 7.0}
    lc, _ = _lc(models={"a": _up()}, **options)
    li, _ = _li(models={"a": _up()}, **options)
    for manager in (lc.manager, li.manager):
        assert manager.retry_policy.max_retries == 1
        assert manager.breaker_policy.failure_threshold == 2
        assert manager.breaker_policy.recovery_timeout == 7.0


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_misspelt_option_is_refused_with_a_suggestion(adapter: str) -> None:
    """A typo in an option name raises instead of being silently ignored."""
    with pytest.raises(ConfigurationError, match=r"'max_retry' \(did you mean 'max_retries'\?\)"):
        ADAPTERS[adapter](models={"a": _up()}, max_retry=1)


def test_framework_models_in_models_are_wrapped_in_both() -> None:
    """A LangChain chat model and a LlamaIndex LLM given to ``models=`` both just work."""
    chat = GenericFakeChatModel(messages=itertools.repeat(AIMessage("from langchain")))
    _, lc_ask = _lc(models={"primary": _down(), "lc": chat})
    _, li_ask = _li(models={"primary": _down(), "li": MockLLM()})
    assert lc_ask()["model"] == "lc"
    assert li_ask()["model"] == "li"


def test_the_same_facts_under_the_same_keys() -> None:
    """A fallback answer is described identically by both adapters and by the core."""
    _, lc_ask = _lc(models={"primary": _down(), "backup": _up()}, max_retries=1)
    _, li_ask = _li(models={"primary": _down(), "backup": _up()}, max_retries=1)
    lc_info, li_info = lc_ask(), li_ask()
    assert set(lc_info) >= KEYS
    assert set(li_info) >= KEYS
    strip = [{k: v for k, v in a.items() if k != "duration"} for a in lc_info["attempts"]]
    assert strip == [{k: v for k, v in a.items() if k != "duration"} for a in li_info["attempts"]]
    for key in KEYS - {"attempts"}:
        assert lc_info[key] == li_info[key], key
    assert lc_info["fallback_from"] == ["primary"] and lc_info["fallbacks"] == 1
    assert [a["model"] for a in lc_info["attempts"]] == ["primary", "primary", "backup"]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_cache_hit_reports_the_core_view(adapter: str) -> None:
    """A cache hit of an answer first given by the backup gave up no model, as the core says."""
    built, ask = ADAPTERS[adapter](models={"primary": _down(), "backup": _up()})
    first, second = ask(), ask()
    assert (first["cached"], first["fallback_from"]) == (False, ["primary"])
    core = built.manager.chat("hi")
    assert (core.cached, core.fallback_from) == (True, ())
    assert (second["cached"], second["fallback_from"], second["fallbacks"]) == (True, [], 0)
    assert second["attempts"] == []


def test_langchain_stream_ends_with_the_invoke_keys() -> None:
    """The last chunk of a LangChain stream carries the same facts as invoke."""
    model, ask = _lc(
        models={"primary": _down(), "backup": _up()}, enable_caching=False, max_retries=1
    )
    invoked = ask()
    chunks = list(model.stream("hi"))
    streamed = dict(chunks[-1].response_metadata)
    assert set(streamed) == set(invoked)
    for key in KEYS - {"attempts"}:
        assert streamed[key] == invoked[key], key
    assert [a["model"] for a in streamed["attempts"]] == [a["model"] for a in invoked["attempts"]]


def _li_stream_last(llm: ReliableLLM) -> dict[str, Any]:
    *_, last = llm.stream_chat([ChatMessage(role="user", content="hi")])
    return dict(last.additional_kwargs)


def test_llama_index_stream_ends_with_the_chat_facts() -> None:
    """The last response of a LlamaIndex stream says who answered, as chat does."""
    llm, ask = _li(models={"primary": _down(), "backup": _up()}, enable_caching=False)
    invoked = ask()
    streamed = _li_stream_last(llm)
    for key in KEYS - {"attempts"}:  # durations differ; attempts are compared below
        assert streamed[key] == invoked[key], key


def test_llama_index_stream_reports_attempts() -> None:
    """The last response of a LlamaIndex stream lists the request's attempts, as chat does."""
    models = {"primary": _down(), "backup": _up()}
    invoked = _li(models=models, enable_caching=False)[1]()["attempts"]
    streamed = _li_stream_last(_li(models=models, enable_caching=False)[0])["attempts"]
    expected = [("primary", "ServerError")] * 4 + [("backup", None)]
    assert [(a["model"], a["error"]) for a in invoked] == expected
    assert [(a["model"], a["error"]) for a in streamed] == expected


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_copy_with_another_model_routes_to_it(adapter: str) -> None:
    """model_copy(update={"model": ...}) sends that copy's calls to the new model only."""
    built, ask = ADAPTERS[adapter](models={"a": _up("a"), "b": _up("b")})
    copy = built.model_copy(update={"model": "b"})
    if isinstance(copy, ReliableChatModel):
        copied = copy.invoke("hi").response_metadata["model"]
    else:
        copied = copy.chat([ChatMessage(role="user", content="hi")]).additional_kwargs["model"]
    assert (copied, ask()["model"]) == ("b", "a")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_per_call_unknown_model_raises_the_same_error(adapter: str) -> None:
    """Naming an unregistered model for one call raises UnknownModelError in both."""
    built, _ = ADAPTERS[adapter](models={"a": _up()})
    with pytest.raises(UnknownModelError, match="'nope'"):
        if isinstance(built, ReliableChatModel):
            built.invoke("hi", model="nope")
        else:
            built.chat([ChatMessage(role="user", content="hi")], model="nope")


#: Private modules both adapters have, one concern each; the class module is named for the
#: framework's class (`_chat_model` for a chat model, `_llm` for an LLM).
SHARED_MODULES = {
    "__init__",
    "_classify",  # framework and SDK exceptions -> reliable-llm's error tree
    "_content",  # framework content blocks <-> content parts, both ways
    "_convert",  # messages and tool calls, both ways
    "_manager_setup",  # which manager serves the adapter: Core, build_core
    "_metadata",  # what the adapter reports about a model and an answer
    "_provider",  # a framework model as a reliable-llm Provider
    "_stream",  # manager streams -> framework stream items: translate, atranslate
    "_tools",  # framework tools -> tool dicts and tool choice
}
#: Concerns only one framework has, and why.
ONLY_IN = {
    "langchain": {
        "_chat_model",
        "_errors",  # errors that are also LangChain ModelErrors; LlamaIndex has no such tree
        "_structured",  # with_structured_output is ours; LlamaIndex's comes from its base class
        "testing",  # SmartFakeModel for chains and agents
    },
    "llama_index": {
        "_llm",
        "_events",  # retries/fallbacks as LlamaIndex instrumentation events
    },
}
PACKAGES = {"langchain": "langchain_reliable_llm", "llama_index": "llama_index.llms.reliable"}


def _modules(package: str) -> set[str]:
    directory = Path(importlib.import_module(package).__file__ or "").parent
    return {p.stem for p in directory.glob("*.py")}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_both_adapters_have_the_same_module_layout(adapter: str) -> None:
    """Each adapter's modules are the shared layout plus its framework-only concerns."""
    assert _modules(PACKAGES[adapter]) == SHARED_MODULES | ONLY_IN[adapter]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_shared_modules_offer_the_same_building_blocks(adapter: str) -> None:
    """The shared modules define the same names for the same steps in both adapters."""
    package = PACKAGES[adapter]
    setup = importlib.import_module(f"{package}._manager_setup")
    stream = importlib.import_module(f"{package}._stream")
    assert {"Core", "build_core", "OWN_MANAGER_OPTIONS"} <= set(setup.__all__)
    assert {"translate", "atranslate"} <= set(stream.__all__)


#: Constructor options with one meaning in both adapters.
SHARED_OPTIONS = {
    "manager",
    "models",
    "model",
    "fallbacks",
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "timeout",
    "use_cache",
    "cache_ttl",
    *OWN_MANAGER_OPTIONS,
}


def test_both_adapters_take_the_same_reliability_and_sampling_options() -> None:
    """Every shared option is accepted by both constructors and reaches the request."""
    seen: list[dict[str, Any]] = []

    def record(prompt: str, **kwargs: Any) -> str:
        seen.append(kwargs)
        return "ok"

    sampling = {"temperature": 0.5, "max_tokens": 7, "top_p": 0.9, "seed": 3, "stop": ["END"]}
    _, lc_ask = _lc(models={"a": record}, enable_caching=False, **sampling)
    _, li_ask = _li(models={"a": record}, enable_caching=False, **sampling)
    lc_ask()
    li_ask()
    assert [{k: s.get(k) for k in sampling} for s in seen] == [sampling, sampling]
    lc_names = set(ReliableChatModel.model_fields)
    li_names = set(ReliableLLM.model_fields) | set(inspect.signature(ReliableLLM).parameters)
    assert lc_names >= SHARED_OPTIONS
    assert li_names >= SHARED_OPTIONS


def _code_parameters(function: Any) -> list[str]:
    code = function.__code__
    names = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    if code.co_flags & inspect.CO_VARARGS:
        names.append(code.co_varnames[len(names)])
    if code.co_flags & inspect.CO_VARKEYWORDS:
        names.append(code.co_varnames[len(names)])
    return names


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (ReliableChatModel, "_generate"),
        (ReliableChatModel, "_agenerate"),
        (ReliableLLM, "chat"),
        (ReliableLLM, "complete"),
        (ReliableLLM, "astream_chat"),
    ],
)
def test_stored_call_signatures_are_the_functions_own(cls: type, name: str) -> None:
    """The signature the frameworks inspect per call is the method's real parameter list."""
    function = inspect.unwrap(getattr(cls, name))
    assert "__signature__" in vars(function)  # stored, so not rebuilt on every call
    assert list(inspect.signature(function).parameters) == _code_parameters(function)


class _ThreadLoggingChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, noting the thread each call runs in."""

    threads: list[int] = []  # noqa: RUF012  # one list per test, set by the test

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.get_ident())
        return super()._generate(*args, **kwargs)


class _ThreadLoggingLLM(MockLLM):
    """LlamaIndex's MockLLM, noting the thread each call runs in."""

    threads: list[int] = []  # noqa: RUF012

    def chat(self, messages: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.get_ident())
        return super().chat(messages, **kwargs)


def _framework_provider(adapter: str, **options: Any) -> tuple[Any, list[int]]:
    threads: list[int] = []
    if adapter == "langchain":
        chat = _ThreadLoggingChatModel(messages=itertools.repeat(AIMessage("hi")))
        chat.threads = threads
        return LangChainChatProvider(chat, **options), threads
    llm = _ThreadLoggingLLM()
    llm.threads = threads
    return LlamaIndexLLMProvider(llm, **options), threads


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("inline", [False, True])
def test_a_framework_model_runs_inline_only_when_it_vouches_for_its_timeout(
    adapter: str, inline: bool
) -> None:
    """enforces_timeout=True calls the wrapped model in the caller's thread; else a worker's."""
    provider, threads = _framework_provider(adapter, enforces_timeout=inline)
    assert provider.enforces_timeout is inline
    manager = LLMManager(enable_caching=False)
    manager.register_model("m", provider)
    assert manager.generate("hi")
    assert (threads == [threading.get_ident()]) is inline
