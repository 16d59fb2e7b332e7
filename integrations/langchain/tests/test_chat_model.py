"""ReliableChatModel: construction, metadata, per-call options, callbacks and native async."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import ConfigurableField
from langchain_core.tools import tool
from langchain_reliable_llm import ReliableChatModel
from langchain_reliable_llm.testing import SmartFakeModel
from pydantic import BaseModel, ValidationError

from reliable_llm import (
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    LLMManager,
    ServerError,
    ToolCall,
    UnknownModelError,
)
from reliable_llm.testing import FakeClock, ScriptedModel


def _down() -> ScriptedModel:
    return ScriptedModel(default=ServerError("service unavailable", status_code=503))


def _manager(**models: Any) -> LLMManager:
    manager = LLMManager(max_retries=1, clock=FakeClock())
    for name, model in models.items():
        manager.register_model(name, model)
    manager.set_fallback_chain(list(models)[1:])
    return manager


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0
        self.ends: list[LLMResult] = []
        self.errors: list[BaseException] = []
        self.tokens: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.starts += 1

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.ends.append(response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors.append(error)


class _AsyncOnly(SmartFakeModel):
    """A model whose blocking methods fail, proving async calls never fall back to them."""

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        raise AssertionError("the blocking path was used for an async call")

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        raise AssertionError("the blocking stream was used for an async call")


def test_models_shared_through_one_manager_share_cache_and_metrics() -> None:
    """Two chat models around one manager share its cache: the second call is a cache hit."""
    smart = SmartFakeModel()
    manager = _manager(smart=smart)
    first = ReliableChatModel(manager=manager)
    second = ReliableChatModel(manager=manager, model="smart")
    assert first.invoke("hi").response_metadata["cached"] is False
    assert second.invoke("hi").response_metadata["cached"] is True
    assert smart.call_count == 1
    assert manager.get_metrics()["cache"]["hits"] == 1
    assert first.llm_manager is second.llm_manager is manager


def test_plain_parameters_build_a_manager_with_that_configuration() -> None:
    """models=/max_retries=/failure_threshold= build a manager retrying and breaking as told."""
    down = _down()
    model = ReliableChatModel(
        models={"primary": down, "backup": SmartFakeModel()},
        max_retries=2,
        failure_threshold=3,
        clock=FakeClock(),
    )
    assert model.invoke("hi").response_metadata["model_name"] == "backup"
    assert down.call_count == 3
    info = model.llm_manager.get_model_info("primary")
    assert info["breaker"]["state"] == "open"
    assert model.llm_manager.fallback_chain == ("backup",)


def test_manager_and_live_objects_are_excluded_from_serialization() -> None:
    """model_dump() leaves out the manager, the model objects and the clock."""
    model = ReliableChatModel(manager=_manager(smart=SmartFakeModel()), temperature=0.5)
    dumped = model.model_dump()
    assert not {"manager", "models", "clock"} & set(dumped)
    assert dumped["temperature"] == 0.5
    assert not ReliableChatModel.is_lc_serializable()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ConfigurationError, "either manager="),
        (
            {"manager": LLMManager(), "models": {"a": SmartFakeModel()}},
            ConfigurationError,
            "not both",
        ),
        ({"manager": LLMManager(), "max_retries": 2}, ConfigurationError, "max_retries"),
        ({"models": {"a": SmartFakeModel()}, "model": "b"}, UnknownModelError, "unknown model 'b'"),
        ({"models": {"a": SmartFakeModel()}, "api_key": "sk-x"}, ConfigurationError, "api_key"),
        ({"models": {"a": SmartFakeModel()}, "temperature": "hot"}, ValidationError, "temperature"),
    ],
)
def test_invalid_construction_is_rejected(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Missing, conflicting or unknown settings raise a typed error naming the problem."""
    with pytest.raises(error, match=message):
        ReliableChatModel(**kwargs)


def test_response_metadata_names_the_fallback_and_its_attempts() -> None:
    """After the primary fails, metadata names the answering model, the skipped one, attempts."""
    model = ReliableChatModel(manager=_manager(primary=_down(), backup=SmartFakeModel()))
    message = model.invoke("hi")
    metadata = message.response_metadata
    assert metadata["model_name"] == "backup"
    assert metadata["fallback_from"] == ["primary"]
    assert metadata["fallbacks"] == 1
    assert [(a["model"], a["error"]) for a in metadata["attempts"]] == [
        ("primary", "ServerError"),
        ("primary", "ServerError"),
        ("backup", None),
    ]
    assert metadata["finish_reason"] == "stop"
    assert message.usage_metadata == {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}


def test_stream_reports_usage_and_model_once_on_the_last_chunk() -> None:
    """Only the final chunk carries usage and the answering model; text arrives in pieces."""
    model = ReliableChatModel(manager=_manager(primary=_down(), backup=SmartFakeModel()))
    chunks = list(model.stream("tell me something"))
    assert len(chunks) > 2
    assert all(c.usage_metadata is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert last.response_metadata["model_name"] == "backup"
    assert last.response_metadata["fallback_from"] == ["primary"]
    full: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.text == "Echo: tell me something"


def test_stream_metadata_lists_the_attempts() -> None:
    """A streamed answer's last chunk lists every upstream attempt, failures included."""
    model = ReliableChatModel(manager=_manager(primary=_down(), backup=SmartFakeModel()))
    last = list(model.stream("hi"))[-1]
    assert [(a["model"], a["error"]) for a in last.response_metadata["attempts"]] == [
        ("primary", "ServerError"),
        ("primary", "ServerError"),
        ("backup", None),
    ]


async def test_concurrent_async_streams_keep_their_own_attempts() -> None:
    """Attempts of interleaved async streams are attributed to the right stream."""
    manager = _manager(primary=_down(), backup=SmartFakeModel())
    model = ReliableChatModel(manager=manager)

    async def last_metadata(prompt: str, first: str) -> dict[str, Any]:
        chunks = [c async for c in model.astream(prompt, model=first, use_cache=False)]
        return chunks[-1].response_metadata

    failed, direct = await asyncio.gather(
        last_metadata("one", "primary"), last_metadata("two", "backup")
    )
    assert [a["model"] for a in failed["attempts"]] == ["primary", "primary", "backup"]
    assert [a["model"] for a in direct["attempts"]] == ["backup"]


class _Tracked(SmartFakeModel):
    """Streams slowly in pieces and notes when its stream is closed."""

    closed = False

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        try:
            yield from super().stream(request, timeout=timeout)
        finally:
            self.closed = True


def test_stopping_a_stream_early_closes_the_models_stream() -> None:
    """Closing the LangChain stream after one chunk ends the model's stream at once."""
    tracked = _Tracked(chunk_size=1)
    model = ReliableChatModel(manager=_manager(tracked=tracked))
    stream = model.stream("a long answer")
    next(stream)
    assert not tracked.closed
    stream.close()
    assert tracked.closed


def test_per_call_model_and_cache_overrides() -> None:
    """model= picks the first model for one call; use_cache=False skips the cache."""
    a, b = SmartFakeModel("a"), SmartFakeModel("b")
    model = ReliableChatModel(manager=_manager(a=a, b=b))
    assert model.invoke("hi", model="b").response_metadata["model_name"] == "b"
    assert model.invoke("hi", model="b", use_cache=False).response_metadata["cached"] is False
    assert (a.call_count, b.call_count) == (0, 2)
    assert model.invoke("hi").response_metadata["model_name"] == "a"


def test_generation_parameters_and_stop_reach_the_model() -> None:
    """Constructor defaults and per-call values (stop, max_tokens) arrive in the request."""
    smart = SmartFakeModel()
    model = ReliableChatModel(manager=_manager(smart=smart), temperature=0.2, max_tokens=50)
    message = model.invoke("one two three", stop=["two"], max_tokens=10)
    request = smart.calls[-1]
    assert (request.temperature, request.max_tokens, request.stop) == (0.2, 10, ("two",))
    assert message.text == "Echo: one "


def test_identifying_params_keep_langchain_cache_entries_apart() -> None:
    """LangChain's own cache never serves one configuration's answer to another."""
    cache = InMemoryCache()
    smart = SmartFakeModel()
    manager = _manager(smart=smart)
    cold = ReliableChatModel(manager=manager, temperature=0.0, cache=cache)
    warm = ReliableChatModel(manager=manager, temperature=0.9, cache=cache)
    cold.invoke("hi", use_cache=False)
    warm.invoke("hi", use_cache=False)
    cold.invoke("hi", use_cache=False)
    assert smart.call_count == 2
    assert cold._identifying_params != warm._identifying_params


def test_one_callback_run_per_call_with_retries_visible() -> None:
    """Retries and a fallback produce one LLM run whose result lists every attempt."""
    recorder = _Recorder()
    model = ReliableChatModel(manager=_manager(primary=_down(), backup=SmartFakeModel()))
    model.invoke("hi", config={"callbacks": [recorder]})
    assert recorder.starts == 1
    assert len(recorder.ends) == 1
    generation = recorder.ends[0].generations[0][0]
    assert len(generation.message.response_metadata["attempts"]) == 3  # type: ignore[attr-defined]


def test_streamed_tokens_reach_callback_handlers() -> None:
    """on_llm_new_token sees every streamed piece of the answer, in order."""
    recorder = _Recorder()
    model = ReliableChatModel(manager=_manager(smart=SmartFakeModel(chunk_size=3)))
    list(model.stream("abc def", config={"callbacks": [recorder]}))
    assert "".join(recorder.tokens) == "Echo: abc def"
    assert len(recorder.tokens) >= 5
    assert recorder.starts == 1 and len(recorder.ends) == 1


def test_fallback_keeps_bound_tools_and_tool_choice() -> None:
    """The fallback receives the same tools and tool_choice the primary was sent."""

    @tool
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    down, smart = _down(), SmartFakeModel()
    model = ReliableChatModel(manager=_manager(primary=down, backup=smart))
    message = model.bind_tools([lookup], tool_choice="any").invoke("Find 'Oslo' please")
    assert message.tool_calls[0]["args"] == {"city": "Oslo"}
    for request in (down.calls[0], smart.calls[0]):
        assert [t.name for t in request.tools] == ["lookup"]
        assert request.tool_choice == "required"


def test_fallback_keeps_the_structured_output_schema() -> None:
    """Structured output survives a fallback: the backup gets the same JSON schema."""

    class City(BaseModel):
        name: str
        population: int

    down, smart = _down(), SmartFakeModel()
    model = ReliableChatModel(manager=_manager(primary=down, backup=smart))
    result = model.with_structured_output(City, method="json_schema").invoke("'Oslo' has 700000")
    assert result == City(name="Oslo", population=700000)
    assert down.calls[0].response_format == smart.calls[0].response_format
    assert smart.calls[0].response_format is not None


def test_structured_output_include_raw_reports_parse_errors() -> None:
    """include_raw=True returns the raw message and the parsing error instead of raising."""

    class Answer(BaseModel):
        value: int

    scripted = ScriptedModel(default="not json")
    model = ReliableChatModel(manager=_manager(plain=scripted))
    result = model.with_structured_output(Answer, method="json_mode", include_raw=True).invoke("x")
    assert isinstance(result, dict)
    assert result["parsed"] is None
    assert result["raw"].text == "not json"
    assert result["parsing_error"] is not None


@pytest.mark.parametrize("include_raw", [False, True])
def test_structured_output_with_unparsable_tool_arguments_is_an_error(include_raw: bool) -> None:
    """A forced tool call whose arguments are cut off raises (or is the parsing_error), as
    ChatOpenAI does, instead of parsing as None."""

    class Answer(BaseModel):
        city: str

    truncated = ChatResponse(
        text="", tool_calls=(ToolCall("call_1", "Answer", '{"city": "Par'),), finish_reason="stop"
    )
    model = ReliableChatModel(manager=_manager(plain=ScriptedModel(default=truncated)))
    structured = model.with_structured_output(Answer, include_raw=include_raw)
    if include_raw:
        result = structured.invoke("x")
        assert result["parsed"] is None
        assert isinstance(result["parsing_error"], OutputParserException)
    else:
        with pytest.raises(OutputParserException, match="Answer with arguments that are not"):
            structured.invoke("x")


def test_unknown_structured_output_method_is_rejected() -> None:
    """An unknown method raises ValueError naming the supported ones."""
    model = ReliableChatModel(manager=_manager(smart=SmartFakeModel()))
    with pytest.raises(ValueError, match="json_schema"):
        model.with_structured_output({"title": "x", "type": "object"}, method="xml")  # type: ignore[arg-type]


async def test_async_calls_use_the_native_async_path() -> None:
    """ainvoke and astream never touch the model's blocking methods."""
    model = ReliableChatModel(manager=_manager(smart=_AsyncOnly()))
    message = await model.ainvoke("hi")
    assert message.text == "Echo: hi"
    chunks = [c async for c in model.astream("there", use_cache=False)]
    assert "".join(c.text for c in chunks) == "Echo: there"
    assert chunks[-1].response_metadata["model_name"] == "smart"


def test_ls_params_name_the_first_model_and_honour_overrides() -> None:
    """Tracing params report the provider, the first model, and a per-call model override."""
    model = ReliableChatModel(manager=_manager(a=SmartFakeModel(), b=SmartFakeModel()))
    params = model._get_ls_params()
    assert (params["ls_provider"], params["ls_model_name"]) == ("reliable_llm", "a")
    assert model._get_ls_params(model="b")["ls_model_name"] == "b"


def test_configurable_fields_rebuild_shares_the_built_manager() -> None:
    """A model rebuilt by configurable_fields keeps the breakers and cache of the original."""
    smart = SmartFakeModel()
    model = ReliableChatModel(models={"smart": smart}, temperature=0.0)
    tunable = model.configurable_fields(temperature=ConfigurableField(id="temperature"))
    message = tunable.with_config(configurable={"temperature": 0.7}).invoke("hi")
    assert smart.calls[-1].temperature == 0.7
    assert message.response_metadata["model_name"] == "smart"
    assert model.llm_manager.get_metrics()["total_requests"] == 1


def test_tools_bound_with_plain_bind_are_accepted() -> None:
    """Tools and tool_choice='any' bound with bind() reach the model as with bind_tools()."""

    @tool
    def ping(host: str) -> str:
        """Ping a host."""
        return host

    smart = SmartFakeModel()
    model = ReliableChatModel(manager=_manager(smart=smart))
    message = model.bind(tools=[ping], tool_choice="any").invoke("Ping 'example.org'")
    assert message.tool_calls[0]["args"] == {"host": "example.org"}
    assert smart.calls[0].tool_choice == "required"


def test_streaming_flag_streams_invoke_to_callbacks() -> None:
    """With streaming=True, invoke streams: handlers get tokens, the result is whole."""
    recorder = _Recorder()
    model = ReliableChatModel(manager=_manager(smart=SmartFakeModel(chunk_size=2)), streaming=True)
    message = model.invoke("abc", config={"callbacks": [recorder]})
    assert message.text == "Echo: abc"
    assert len(recorder.tokens) >= 4
    assert message.usage_metadata is not None
    assert message.response_metadata["model_name"] == "smart"


def test_identifying_params_follow_a_re_registered_model() -> None:
    """Tracing params describe the provider now registered, not the one cached before."""
    manager = _manager(smart=SmartFakeModel())
    model = ReliableChatModel(manager=manager)
    before = model._identifying_params["providers"]["smart"]
    manager.register_model("smart", ScriptedModel(name="scripted-now"), replace=True)
    after = model._identifying_params["providers"]["smart"]
    assert before != after
    assert after["provider"] == "scripted-now"


def test_callbacks_see_langchains_invocation_params() -> None:
    """A callback's invocation_params are what LangChain's own method computes for the call."""
    seen: list[dict[str, Any]] = []

    class _Params(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            seen.append(kwargs["invocation_params"])

    model = ReliableChatModel(manager=_manager(smart=SmartFakeModel()), temperature=0.2)
    model.invoke("hi", stop=["END"], config={"callbacks": [_Params()]})
    expected = BaseChatModel._get_invocation_params(model, stop=["END"])
    assert seen == [expected]
    assert (expected["_type"], expected["stop"], expected["temperature"]) == (
        "reliable-llm",
        ["END"],
        0.2,
    )
