"""`LangChainChatProvider`: any LangChain chat model as a model of an `LLMManager`."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_reliable_llm._classify import classify_langchain_error
from langchain_reliable_llm._content import answer_reasoning
from langchain_reliable_llm._convert import to_langchain_messages
from reliable_llm import (
    ChatRequest,
    ChatResponse,
    Provider,
    StreamChunk,
    ToolCall,
    ToolCallAssembler,
    ToolCallDelta,
    Usage,
)

__all__ = ["LangChainChatProvider", "without_sdk_retries"]

# The wrapped model's own run must not show up as a second LLM run in the caller's
# callbacks (one logical call, one run): it runs with no inherited handlers.
_QUIET: RunnableConfig = {"callbacks": [], "run_name": "reliable_llm_provider"}
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "function_call": "tool_calls",
}
# Eagerly built OpenAI-style clients: (root client field, resource field, resource path).
_EAGER_CLIENTS = (
    ("root_client", "client", ("chat", "completions")),
    ("root_async_client", "async_client", ("chat", "completions")),
)


def without_sdk_retries(chat_model: BaseChatModel) -> BaseChatModel:
    """A copy of ``chat_model`` whose own retries are off, so only the manager retries.

    Works for models with a ``max_retries`` field: lazily built SDK clients (cached
    properties, as in ``ChatAnthropic``) are dropped so they are rebuilt with it, and eagerly
    built OpenAI-style clients are copied with ``with_options(max_retries=0)``. Models
    without that field are returned unchanged.
    """
    if "max_retries" not in type(chat_model).model_fields:
        return chat_model
    copy = chat_model.model_copy(update={"max_retries": 0})
    for name, attr in vars(type(copy)).items():
        if isinstance(attr, functools.cached_property):
            copy.__dict__.pop(name, None)
    for root_field, resource_field, path in _EAGER_CLIENTS:
        root = getattr(copy, root_field, None)
        if root is None or not callable(getattr(root, "with_options", None)):
            continue
        root = root.with_options(max_retries=0)
        resource = functools.reduce(getattr, path, root)
        object.__setattr__(copy, root_field, root)
        object.__setattr__(copy, resource_field, resource)
    return copy


def _finish_reason(metadata: dict[str, Any], has_calls: bool) -> str | None:
    reason = metadata.get("finish_reason") or metadata.get("stop_reason")
    if not isinstance(reason, str):
        return "tool_calls" if has_calls else None
    return _FINISH.get(reason, reason)


def _usage(message: AIMessage) -> Usage | None:
    usage = message.usage_metadata
    if usage is None:
        return None
    inputs = usage.get("input_token_details") or {}
    outputs = usage.get("output_token_details") or {}
    return Usage(
        usage.get("input_tokens", 0),
        usage.get("output_tokens", 0),
        inputs.get("cache_read") or 0,
        inputs.get("cache_creation") or 0,
        outputs.get("reasoning") or 0,
    )


class LangChainChatProvider(Provider):
    """Serves requests with a LangChain chat model (``ChatOpenAI``, ``ChatAnthropic``, ...).

    The request's messages become LangChain messages, its tools are bound with
    ``bind_tools`` (``tool_choice`` included), and generation parameters, ``stop``,
    ``response_format`` and extra parameters are passed as call keyword arguments.
    Sync, async and streaming calls use the model's native methods. The model's own
    retries are disabled (see `without_sdk_retries`) and its exceptions are translated by
    `classify_langchain_error`; unrecognised exceptions propagate unchanged, for the
    manager's ``classify_error`` to judge.

    Content: the wrapped model is taken to read text only, since no wrapper can know what
    it accepts; declare more at registration (``metadata={"capabilities": {"image":
    ["data", "url"]}}``, see `reliable_llm.ModelCapabilities`) and parts reach it as
    LangChain's standard content blocks. Its reasoning (``reasoning`` content blocks, as
    LangChain parses each integration's output) and prompt-cache and reasoning token counts
    come back in the response, issued by this provider's ``name``.

    Args:
        chat_model: The LangChain chat model to serve.
        disable_retries: Turn the model's own retries off (recommended).
        name: Provider name reported in responses (default: the model's ``_llm_type``).
        enforces_timeout: True only for a model whose blocking calls cannot outlive the
            per-attempt timeout (an in-process fake such as ``GenericFakeChatModel``): the
            manager then calls it in the caller's thread, saving a thread hand-off (tens of
            µs) per call. By default a blocking call runs in a worker thread the manager stops
            waiting for when the timeout passes, since an HTTP client's timeout bounds each
            read, not the whole call (`reliable_llm.Provider.enforces_timeout`).
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        disable_retries: bool = True,
        name: str | None = None,
        enforces_timeout: bool = False,
    ) -> None:
        self.chat_model = without_sdk_retries(chat_model) if disable_retries else chat_model
        self.provider_name = name or chat_model._llm_type
        self.enforces_timeout = enforces_timeout

    def _runnable(self, request: ChatRequest) -> tuple[Runnable[Any, Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        for field in ("temperature", "max_tokens", "top_p", "seed", "response_format"):
            value = getattr(request, field)
            if value is not None:
                kwargs[field] = value
        if request.stop:
            kwargs["stop"] = list(request.stop)
        kwargs.update(request.extra)
        model: Runnable[Any, Any] = self.chat_model
        if request.tools:
            tools = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
            choice = "any" if request.tool_choice == "required" else request.tool_choice
            model = self.chat_model.bind_tools(tools, tool_choice=choice)
        return model, kwargs

    def _messages(self, request: ChatRequest) -> list[BaseMessage]:
        return to_langchain_messages(request.messages)

    def _response(self, message: AIMessage) -> ChatResponse:
        calls = tuple(
            ToolCall(
                c.get("id") or f"call_{i}", c["name"], json.dumps(c["args"], ensure_ascii=False)
            )
            for i, c in enumerate(message.tool_calls)
        )
        metadata = message.response_metadata
        provider_model = metadata.get("model_name") or metadata.get("model")
        return ChatResponse(
            # LangChain's .text is a str subclass (TextAccessor); responses hold a plain str.
            text=str(message.text),
            tool_calls=calls,
            finish_reason=_finish_reason(metadata, bool(calls)) or "stop",
            usage=_usage(message),
            provider=self.provider_name,
            provider_model=provider_model if isinstance(provider_model, str) else None,
            reasoning=answer_reasoning(message, self.provider_name),
        )

    def _translate(self, exc: Exception) -> Exception:
        error = classify_langchain_error(exc)
        return exc if error is None else error

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Call the model's ``invoke``."""
        model, kwargs = self._runnable(request)
        try:
            message = model.invoke(self._messages(request), config=_QUIET, **kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc
        return self._response(message)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Call the model's ``ainvoke``, cut off after ``timeout`` seconds."""
        model, kwargs = self._runnable(request)
        try:
            async with asyncio.timeout(timeout):
                message = await model.ainvoke(self._messages(request), config=_QUIET, **kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc
        return self._response(message)

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        """Call the model's ``stream``."""
        model, kwargs = self._runnable(request)
        folder = _ChunkFolder(self.provider_name)
        try:
            for chunk in model.stream(self._messages(request), config=_QUIET, **kwargs):
                piece = folder.add(chunk)
                if piece is not None:
                    yield piece
        except Exception as exc:
            raise self._translate(exc) from exc
        yield folder.last()

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Call the model's ``astream``."""
        model, kwargs = self._runnable(request)
        folder = _ChunkFolder(self.provider_name)
        try:
            async for chunk in model.astream(self._messages(request), config=_QUIET, **kwargs):
                piece = folder.add(chunk)
                if piece is not None:
                    yield piece
        except Exception as exc:
            raise self._translate(exc) from exc
        yield folder.last()

    def describe(self) -> dict[str, object]:
        """Provider name, the wrapped class and its model name (never keys)."""
        model = getattr(self.chat_model, "model_name", None) or getattr(
            self.chat_model, "model", None
        )
        return {
            "provider": self.provider_name,
            "chat_model": type(self.chat_model).__name__,
            "model": model if isinstance(model, str) else None,
        }

    def __repr__(self) -> str:
        return f"LangChainChatProvider({type(self.chat_model).__name__})"


class _ChunkFolder:
    """Turns LangChain chunks into ours; usage is summed and reported once, at the end.

    Tool-call chunks go through the core's `ToolCallAssembler`, so each delta carries its
    call's slot: parallel calls numbered alike, or not numbered at all, stay apart.
    Reasoning in a chunk's content blocks streams as ``reasoning`` text; chunks with block
    content are also merged, so the last chunk carries the whole reasoning parts (with the
    signatures that arrive apart from the text).
    """

    __slots__ = ("_calls", "_merged", "finish_reason", "has_calls", "issuer", "usage")

    def __init__(self, issuer: str = "") -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.has_calls = False
        self.issuer = issuer
        self._calls = ToolCallAssembler()
        self._merged: AIMessageChunk | None = None

    def _delta(self, call: Any) -> ToolCallDelta:
        id, name, arguments = call.get("id"), call.get("name"), call.get("args") or ""
        slot = self._calls.add(call.get("index"), id, name, arguments)
        return ToolCallDelta(slot, id, name, arguments)

    def _reasoning(self, chunk: AIMessageChunk) -> str:
        """The chunk's reasoning text; block content is kept for the final parts."""
        self._merged = chunk if self._merged is None else self._merged + chunk
        return "".join(
            str(block.get("reasoning") or "")
            for block in chunk.content_blocks
            if block.get("type") == "reasoning"
        )

    def add(self, chunk: AIMessageChunk) -> StreamChunk | None:
        usage = _usage(chunk)
        if usage is not None:
            self.usage = usage if self.usage is None else self.usage + usage
        reason = _finish_reason(chunk.response_metadata, False)
        if reason is not None:
            self.finish_reason = reason
        deltas = tuple(self._delta(c) for c in chunk.tool_call_chunks)
        self.has_calls = self.has_calls or bool(deltas)
        text = str(chunk.text)
        reasoning = self._reasoning(chunk) if isinstance(chunk.content, list) else ""
        if not text and not deltas and not reasoning:
            return None
        return StreamChunk(text=text, tool_call_deltas=deltas, reasoning=reasoning)

    def last(self) -> StreamChunk:
        finish = self.finish_reason or ("tool_calls" if self.has_calls else "stop")
        merged = self._merged
        parts = () if merged is None else answer_reasoning(merged, self.issuer)
        return StreamChunk(finish_reason=finish, usage=self.usage, reasoning_parts=parts)
