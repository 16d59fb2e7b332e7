"""LangChainChatProvider: LangChain chat models as manager models, retries off, errors typed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core import exceptions as lc
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_openai import ChatOpenAI
from langchain_reliable_llm import (
    LangChainChatProvider,
    ReliableAPIError,
    ReliableChatModel,
    classify_langchain_error,
    without_sdk_retries,
)
from langchain_reliable_llm.testing import SmartFakeModel

from reliable_llm import (
    AuthenticationError,
    ContextWindowExceededError,
    InvalidRequestError,
    LLMManager,
    Message,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    ToolCall,
)
from reliable_llm.testing import FakeClock

_REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(cls: type[Exception], code: int, body: object = None, **headers: str) -> Exception:
    response = httpx2.Response(code, headers=headers, request=_REQUEST)
    return cls("upstream said no", response=response, body=body)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_status(openai.RateLimitError, 429), RateLimitError),
        (_status(openai.InternalServerError, 500), ServerError),
        (_status(openai.InternalServerError, 503), ServerError),
        (_status(anthropic.OverloadedError, 529), OverloadedError),
        (_status(openai.AuthenticationError, 401), AuthenticationError),
        (_status(anthropic.PermissionDeniedError, 403), PermissionDeniedError),
        (_status(openai.NotFoundError, 404), ModelNotFoundError),
        (_status(openai.BadRequestError, 400), InvalidRequestError),
        (
            _status(openai.BadRequestError, 400, {"code": "context_length_exceeded"}),
            ContextWindowExceededError,
        ),
        (openai.APITimeoutError(request=_REQUEST), ProviderTimeoutError),
        (openai.APIConnectionError(request=_REQUEST), ProviderConnectionError),
        (anthropic.APIConnectionError(request=_REQUEST), ProviderConnectionError),
        (lc.ModelRateLimitError("limited"), RateLimitError),
        (lc.ContextOverflowError("too long"), ContextWindowExceededError),
        (TimeoutError("slow"), ProviderTimeoutError),
    ],
)
def test_sdk_and_langchain_errors_are_classified(exc: Exception, expected: type) -> None:
    """SDK errors map by status code or kind, LangChain's by class, to our error tree."""
    error = classify_langchain_error(exc)
    assert type(error) is expected
    assert error is not None and error.__cause__ is exc


def test_classification_keeps_status_and_retry_after() -> None:
    """The status code and a Retry-After hint carry over to our error."""
    error = classify_langchain_error(
        _status(openai.RateLimitError, 429, None, **{"retry-after": "7"})
    )
    assert error is not None
    assert (error.status_code, error.retry_after) == (429, 7.0)


def test_unknown_exceptions_are_left_to_the_manager() -> None:
    """An exception of no known kind is not classified (the manager's default applies)."""
    assert classify_langchain_error(ValueError("bug")) is None


class _RecordingChat(GenericFakeChatModel):
    """A LangChain model that records what it was called with and can bind tools."""

    seen: list[dict[str, Any]] = []  # noqa: RUF012 - per-test instances replace it

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=tools, tool_choice=tool_choice, **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        self.seen.append({"messages": messages, "stop": stop, **kwargs})
        return super()._generate(messages, stop, run_manager, **kwargs)


def _tool_answer() -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[{"name": "lookup", "args": {"city": "Oslo"}, "id": "t1", "type": "tool_call"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
    )


def test_request_is_translated_to_langchain_and_back() -> None:
    """Messages, tools, tool_choice and parameters reach the model; tool calls come back."""
    chat = _RecordingChat(messages=iter([_tool_answer()]))
    chat.seen = []
    manager = LLMManager()
    manager.register_model("lc", LangChainChatProvider(chat))
    history = [
        Message.user("weather?"),
        Message.assistant("", [ToolCall("t0", "lookup", '{"city": "Rome"}')]),
        Message.tool("sunny", "t0"),
        Message.user("and Oslo?"),
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    response = manager.chat(
        history, tools=tools, tool_choice="required", temperature=0.1, stop=["END"]
    )
    assert response.tool_calls == (ToolCall("t1", "lookup", '{"city": "Oslo"}'),)
    assert (response.finish_reason, response.provider_model) == ("tool_calls", "fake-1")
    assert response.usage is not None and response.usage.total_tokens == 7
    seen = chat.seen[0]
    assert [type(m).__name__ for m in seen["messages"]] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "HumanMessage",
    ]
    assert seen["messages"][1].tool_calls[0]["args"] == {"city": "Rome"}
    assert seen["tool_choice"] == "any"
    assert (seen["temperature"], seen["stop"]) == (0.1, ["END"])


def test_streaming_uses_the_wrapped_models_stream() -> None:
    """A stream through the provider yields the wrapped model's pieces, then usage once."""
    chat = GenericFakeChatModel(messages=iter(["one two three"]))
    manager = LLMManager()
    manager.register_model("lc", LangChainChatProvider(chat))
    chunks = list(manager.stream("hi"))
    assert len(chunks) > 2
    assert "".join(c.text for c in chunks) == "one two three"
    assert chunks[-1].finish_reason == "stop"


async def test_async_uses_the_wrapped_models_async_methods() -> None:
    """achat and astream go through the wrapped model's ainvoke and astream."""
    chat = GenericFakeChatModel(messages=iter(["first answer", "second answer"]))
    manager = LLMManager(enable_caching=False)
    manager.register_model("lc", LangChainChatProvider(chat))
    assert (await manager.achat("hi")).text == "first answer"
    assert "".join([c.text async for c in manager.astream("hi")]) == "second answer"


class _Counter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.starts += 1


def test_wrapped_model_runs_are_not_a_second_llm_run() -> None:
    """Callbacks see one chat-model run per call, not one more for the wrapped model."""
    counter = _Counter()
    manager = LLMManager()
    manager.register_model("lc", LangChainChatProvider(GenericFakeChatModel(messages=iter(["x"]))))
    ReliableChatModel(manager=manager).invoke("hi", config={"callbacks": [counter]})
    assert counter.starts == 1


def test_models_without_retry_settings_are_used_as_they_are() -> None:
    """A model with no max_retries field is served unchanged."""
    chat = GenericFakeChatModel(messages=iter(["x"]))
    assert without_sdk_retries(chat) is chat


def test_sdk_retries_are_disabled_on_copies_only() -> None:
    """ChatOpenAI and ChatAnthropic copies have retries off; the originals keep theirs."""
    gpt = ChatOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=4)  # type: ignore[arg-type]
    claude = ChatAnthropic(api_key="sk-test", model="claude-x", max_retries=4)  # type: ignore[arg-type,call-arg]
    quiet_gpt = LangChainChatProvider(gpt).chat_model
    quiet_claude = LangChainChatProvider(claude).chat_model
    assert quiet_gpt.root_client.max_retries == 0  # type: ignore[attr-defined]
    assert quiet_gpt.root_async_client.max_retries == 0  # type: ignore[attr-defined]
    assert quiet_claude._client.max_retries == 0  # type: ignore[attr-defined]
    assert gpt.root_client.max_retries == 4 and claude.max_retries == 4
    assert "sk-test" not in repr(LangChainChatProvider(gpt).describe())


class _Upstream(BaseHTTPRequestHandler):
    """Answers every POST with the server's next scripted (status, body)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        server: Any = self.server
        server.hits += 1
        status, body = server.replies.pop(0) if server.replies else server.default
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.hits, server.replies = 0, []
    server.default = (503, {"error": {"message": "unavailable", "type": "server_error"}})
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hello from upstream"},
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
}


def test_chat_openai_through_the_manager_retries_only_once_per_policy(upstream: Any) -> None:
    """A failing ChatOpenAI is called once per manager attempt (no hidden SDK retries)."""
    gpt = ChatOpenAI(
        api_key="sk-test",
        base_url=f"http://127.0.0.1:{upstream.server_port}/v1",  # type: ignore[arg-type]
        model="gpt-test",
        max_retries=5,
    )
    manager = LLMManager(max_retries=2, clock=FakeClock())
    manager.register_model("gpt", LangChainChatProvider(gpt))
    manager.register_model("backup", SmartFakeModel())
    manager.set_fallback_chain(["backup"])
    message = ReliableChatModel(manager=manager).invoke("hi")
    assert upstream.hits == 3
    assert message.response_metadata["model_name"] == "backup"
    assert [a["error"] for a in message.response_metadata["attempts"][:3]] == ["ServerError"] * 3


def test_chat_openai_answer_comes_back_with_usage(upstream: Any) -> None:
    """A healthy ChatOpenAI answers through the manager with its text, usage and model id."""
    upstream.replies.append((200, _COMPLETION))
    gpt = ChatOpenAI(
        api_key="sk-test",
        base_url=f"http://127.0.0.1:{upstream.server_port}/v1",  # type: ignore[arg-type]
        model="gpt-test",
    )
    manager = LLMManager()
    manager.register_model("gpt", LangChainChatProvider(gpt))
    response = manager.chat("hi")
    assert response.text == "hello from upstream"
    assert response.usage is not None and response.usage.total_tokens == 6
    assert response.provider_model == "gpt-test"


def test_chat_anthropic_overload_falls_back_typed(upstream: Any) -> None:
    """A ChatAnthropic answering 529 is retried as overloaded, then surfaces typed."""
    upstream.default = (
        529,
        {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}},
    )
    claude = ChatAnthropic(
        api_key="sk-test",
        model="claude-test",
        max_retries=5,  # type: ignore[arg-type,call-arg]
        base_url=f"http://127.0.0.1:{upstream.server_port}",
    )
    manager = LLMManager(max_retries=1, clock=FakeClock())
    manager.register_model("claude", LangChainChatProvider(claude))
    with pytest.raises(ReliableAPIError) as caught:
        ReliableChatModel(manager=manager).invoke("hi")
    assert upstream.hits == 2
    assert all(isinstance(e, OverloadedError) for e in caught.value.errors)
    assert caught.value.errors[0].status_code == 529
