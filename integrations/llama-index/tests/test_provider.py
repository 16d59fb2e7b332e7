"""LlamaIndexLLMProvider: existing LlamaIndex LLMs as models of an LLMManager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.llms.reliable import LlamaIndexLLMProvider, ReliableLLM, classify_llm_error

from reliable_llm import (
    AllModelsFailedError,
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    LLMManager,
    Message,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ServerError,
    TimeoutPolicy,
    Tool,
    TransientError,
)
from reliable_llm.testing import FakeClock, ScriptedModel

ADD = Tool(
    "add",
    "Add two numbers.",
    {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
)


class FakeResponse:
    """The bits of an HTTP response SDK errors carry."""

    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers


class FakeSDKError(Exception):
    """An SDK-style error: a status code on the response, a request id on the error."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = FakeResponse(status, headers or {})
        self.request_id = "req_123"


class APITimeoutError(Exception):
    """Named like the OpenAI SDK's timeout error, without importing it."""


class APIConnectionError(Exception):
    """Named like the OpenAI SDK's connection error, without importing it."""


class FailingLLM(CustomLLM):
    """A LlamaIndex LLM that fails with ``errors`` in turn, then echoes; counts calls."""

    errors: list[Any] = Field(default_factory=list)
    calls: int = 0
    api_key: str = "sk-secret-never-shown"
    delay: float = 0.0

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="failing-1", context_window=999, num_output=77)

    def _next(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self._next()
        return CompletionResponse(text=f"echo: {prompt}")

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self._next()

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="ec", delta="ec")
            yield CompletionResponse(text="echo", delta="ho")

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        self._next()
        await asyncio.sleep(self.delay)
        return ChatResponse(message=ChatMessage(role="assistant", content="async echo"))


def test_wrapped_llm_answers_sync_async_and_streaming() -> None:
    """A MockLLM served by the manager answers through chat, achat, stream and astream."""
    manager = LLMManager()
    manager.register_model("mock", LlamaIndexLLMProvider(MockLLM()))
    assert "ping" in manager.chat("ping", use_cache=False).text
    assert "pong" in asyncio.run(manager.achat("pong", use_cache=False)).text
    streamed = list(manager.stream("abc", use_cache=False))
    assert "abc" in "".join(c.text for c in streamed)
    assert streamed[-1].finish_reason == "stop"

    async def collect() -> str:
        return "".join([c.text async for c in manager.astream("xyz", use_cache=False)])

    assert "xyz" in asyncio.run(collect())


def test_reliable_llm_wraps_llama_index_llms_given_as_models(clock: FakeClock) -> None:
    """ReliableLLM(models={...}) registers a LlamaIndex LLM through LlamaIndexLLMProvider."""
    failing = FailingLLM(errors=[FakeSDKError(503)] * 5)
    llm = ReliableLLM(
        models={"failing": failing, "mock": MockLLM()},
        fallbacks=["mock"],
        max_retries=1,
        clock=clock,
    )
    assert "hello" in llm.complete("hello").text
    assert failing.calls == 2
    info = llm.manager.get_model_info("failing")
    assert info["provider"]["llm"] == "FailingLLM"
    assert info["last_error_type"] == "ServerError"
    assert llm.metadata.context_window == 999
    assert llm.metadata.num_output == 77
    assert llm.metadata.model_name == "failing-1"
    assert not llm.metadata.is_function_calling_model


def test_describe_is_secret_free() -> None:
    """The provider's description never includes the wrapped LLM's API key."""
    provider = LlamaIndexLLMProvider(FailingLLM())
    assert "sk-secret" not in repr(provider.describe())
    assert "sk-secret" not in repr(provider)


def test_tools_go_through_the_function_calling_llm() -> None:
    """Tools reach a FunctionCallingLLM's chat_with_tools; its tool calls come back typed."""
    provider = LlamaIndexLLMProvider(MockFunctionCallingLLM())
    manager = LLMManager()
    manager.register_model("fc", provider)
    response = manager.chat("use a tool", tools=[ADD], use_cache=False)
    (call,) = response.tool_calls
    assert call.name == "add"
    assert response.finish_reason == "tool_calls"
    followup = [
        Message.user("use a tool"),
        response.message,
        Message.tool("3", call.id),
    ]
    assert manager.chat(followup, tools=[ADD]).text == "Tool calls complete."
    streamed = list(manager.stream("use a tool", tools=[ADD], use_cache=False))
    assert [d.name for c in streamed for d in c.tool_call_deltas] == ["add"]


async def test_async_tools_and_stream_use_native_async() -> None:
    """achat_with_tools and astream_chat_with_tools of the wrapped LLM serve async calls."""
    manager = LLMManager()
    manager.register_model("fc", LlamaIndexLLMProvider(MockFunctionCallingLLM()))
    response = await manager.achat("tool please", tools=[ADD], use_cache=False)
    assert [c.name for c in response.tool_calls] == ["add"]
    chunks = [c async for c in manager.astream("tool please", tools=[ADD], use_cache=False)]
    assert [d.name for c in chunks for d in c.tool_call_deltas] == ["add"]


def test_tools_offered_to_a_text_llm_fall_back(clock: FakeClock) -> None:
    """Tools sent to a non-function-calling LLM are rejected, so the next model answers."""
    manager = LLMManager(clock=clock)
    manager.register_model("text", LlamaIndexLLMProvider(MockLLM()))
    manager.register_model("tools", ScriptedModel(default="tool-capable answer"))
    manager.set_fallback_chain(["tools"])
    response = manager.chat("x", tools=[ADD])
    assert response.text == "tool-capable answer"
    assert isinstance(response.attempts[0].error, InvalidRequestError)
    assert manager.get_model_info("text")["breaker"]["failure_count"] == 0


def test_wrapped_errors_are_retried_and_keep_their_cause(clock: FakeClock) -> None:
    """A 429 from the wrapped LLM is retried; the final error chain ends at the SDK error."""
    errors = [FakeSDKError(429, {"retry-after": "2"}) for _ in range(3)]
    llm = FailingLLM(errors=list(errors))
    manager = LLMManager(max_retries=2, clock=clock)
    manager.register_model("li", LlamaIndexLLMProvider(llm))
    with pytest.raises(AllModelsFailedError) as info:
        manager.chat("x")
    assert llm.calls == 3
    last = info.value.__cause__
    assert isinstance(last, RateLimitError)
    assert (last.status_code, last.retry_after, last.request_id) == (429, 2.0, "req_123")
    assert last.__cause__ is errors[-1]
    assert clock.sleeps[:2] == [2.0, 2.0]


def test_configuration_errors_pass_through(clock: FakeClock) -> None:
    """A ConfigurationError from the wrapped LLM reaches the caller without retry or fallback."""
    failing = FailingLLM(errors=[ConfigurationError("no API key configured")])
    backup = ScriptedModel(default="fine")
    manager = LLMManager(max_retries=2, clock=clock)
    manager.register_model("li", LlamaIndexLLMProvider(failing))
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    with pytest.raises(ConfigurationError, match="no API key"):
        manager.chat("x")
    assert (failing.calls, backup.call_count) == (1, 0)


def test_stream_errors_are_classified(clock: FakeClock) -> None:
    """An error opening the wrapped LLM's stream is classified and falls back."""
    manager = LLMManager(max_retries=0, clock=clock)
    manager.register_model("li", LlamaIndexLLMProvider(FailingLLM(errors=[FakeSDKError(401)])))
    manager.register_model("backup", ScriptedModel(default="fine"))
    manager.set_fallback_chain(["backup"])
    chunks = list(manager.stream("x"))
    assert "".join(c.text for c in chunks) == "fine"
    assert manager.get_model_info("li")["last_error_type"] == "AuthenticationError"


async def test_async_timeout_bounds_the_wrapped_call() -> None:
    """A wrapped async call slower than the per-attempt timeout fails as a timeout."""
    manager = LLMManager(
        max_retries=0, timeouts=TimeoutPolicy(total=5.0, per_attempt=0.01), enable_caching=False
    )
    manager.register_model("slow", LlamaIndexLLMProvider(FailingLLM(delay=1.0)))
    with pytest.raises(AllModelsFailedError) as info:
        await manager.achat("x")
    assert isinstance(info.value.__cause__, ProviderTimeoutError)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, ModelNotFoundError),
        (408, ProviderTimeoutError),
        (413, InvalidRequestError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (529, OverloadedError),
        (418, InvalidRequestError),
    ],
)
def test_status_codes_map_to_the_error_tree(status: int, expected: type[Exception]) -> None:
    """classify_llm_error maps an HTTP status to the matching error class."""
    error = classify_llm_error(FakeSDKError(status))
    assert type(error) is expected
    assert error.status_code == status


class CodedError(FakeSDKError):
    """An OpenAI-style error: a status plus an error code in its body."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(status)
        self.body = {"error": {"code": code, "message": "..."}}


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "context_length_exceeded", ContextWindowExceededError),
        (400, "content_filter", ContentPolicyError),
        (429, "insufficient_quota", ProviderUnavailableError),
        (429, "rate_limit_exceeded", RateLimitError),
    ],
)
def test_body_error_codes_refine_the_status(
    status: int, code: str, expected: type[Exception]
) -> None:
    """An error code in the body picks the rejection kind, as the core's providers do."""
    assert type(classify_llm_error(CodedError(status, code))) is expected


def test_retry_after_ms_is_honoured() -> None:
    """retry-after-ms (OpenAI) wins over retry-after, like the core's providers."""
    error = classify_llm_error(FakeSDKError(429, {"retry-after-ms": "250", "retry-after": "9"}))
    assert error.retry_after == 0.25


class TransportError(Exception):
    """Named like httpx's transport error base class."""


class HTTPXReadError(TransportError):
    """A subclass whose own name says nothing: the base class name decides."""


class StatusAttrError(Exception):
    """An SDK error that carries the status on itself."""

    status_code = 429


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (StatusAttrError("limited"), RateLimitError),
        (TimeoutError("slow"), ProviderTimeoutError),
        (APITimeoutError("slow"), ProviderTimeoutError),
        (ConnectionResetError("reset"), ProviderConnectionError),
        (APIConnectionError("refused"), ProviderConnectionError),
        (HTTPXReadError("dropped"), ProviderConnectionError),
        (RuntimeError("weird"), TransientError),
    ],
)
def test_errors_without_a_response_are_classified(
    exc: BaseException, expected: type[Exception]
) -> None:
    """Status attributes, timeouts and connection errors are recognized without SDK imports."""
    assert type(classify_llm_error(exc)) is expected


def test_our_errors_pass_through_unchanged() -> None:
    """A ProviderError raised inside a wrapped LLM keeps its class and identity."""
    error = OverloadedError("busy")
    assert classify_llm_error(error) is error


class SlowStreamLLM(CustomLLM):
    """Streams asynchronously with a pause longer than the timeout between chunks."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="x")

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return iter([CompletionResponse(text="x", delta="x")])

    @llm_chat_callback()
    async def astream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseAsyncGen:
        async def gen() -> AsyncGenerator[ChatResponse, None]:
            yield ChatResponse(message=ChatMessage(role="assistant", content="a"), delta="a")
            await asyncio.sleep(1.0)
            yield ChatResponse(message=ChatMessage(role="assistant", content="ab"), delta="b")

        return gen()

    @llm_chat_callback()
    def stream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseGen:
        raise NotImplementedError


async def test_async_stream_timeout_bounds_each_wait() -> None:
    """A wrapped async stream that stalls longer than the timeout is interrupted."""
    provider = LlamaIndexLLMProvider(SlowStreamLLM())
    from reliable_llm import ChatRequest

    stream = provider.astream(ChatRequest((Message.user("x"),)), timeout=0.01)
    first = await anext(stream)
    assert first.text == "a"
    with pytest.raises(ProviderTimeoutError):
        await anext(stream)
