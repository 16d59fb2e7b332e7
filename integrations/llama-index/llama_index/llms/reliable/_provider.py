"""`LlamaIndexLLMProvider`: any LlamaIndex LLM as a model of an `LLMManager`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock
from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.tools import BaseTool, ToolMetadata, ToolOutput
from llama_index.llms.reliable._classify import classify_llm_error
from llama_index.llms.reliable._convert import to_li_message

from reliable_llm import (
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    InvalidRequestError,
    Provider,
    ReasoningPart,
    StreamChunk,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["LlamaIndexLLMProvider"]


class _SchemaToolMetadata(ToolMetadata):
    """Tool metadata whose parameters are a JSON schema rather than a pydantic model."""

    schema: Mapping[str, Any] | None = None

    def get_parameters_dict(self) -> dict[str, Any]:
        return dict(self.schema or {"type": "object", "properties": {}})


class _SchemaTool(BaseTool):
    """A tool the wrapped LLM may select; the manager's caller runs it, never this object."""

    def __init__(self, tool: Tool) -> None:
        self._metadata = _SchemaToolMetadata(
            description=tool.description or tool.name, name=tool.name, fn_schema=None
        )
        self._metadata.schema = tool.parameters

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    def __call__(self, input: Any) -> ToolOutput:  # pragma: no cover - never called
        raise NotImplementedError("reliable-llm only forwards tool definitions to the model")


def _usage(response: LIChatResponse) -> Usage | None:
    extra = response.additional_kwargs
    inp = extra.get("prompt_tokens", extra.get("input_tokens"))
    out = extra.get("completion_tokens", extra.get("output_tokens"))
    if isinstance(inp, int) and isinstance(out, int):
        details = [extra.get(k) for k in _USAGE_DETAILS]
        return Usage(inp, out, *(d if isinstance(d, int) else 0 for d in details))
    return None


# Our own `additional_kwargs` names (LlamaIndex has no standard ones for these counts).
_USAGE_DETAILS = ("cache_read_tokens", "cache_creation_tokens", "reasoning_tokens")


def _reasoning(response: LIChatResponse, issuer: str) -> tuple[ReasoningPart, ...]:
    """The answer's `ThinkingBlock`s as reasoning parts issued by ``issuer``."""
    parts = []
    for block in response.message.blocks:
        if isinstance(block, ThinkingBlock):
            info = block.additional_information
            redacted = info.get("redacted_data")
            if block.content or redacted is not None:
                parts.append(
                    ReasoningPart(
                        block.content or "",
                        signature=info.get("signature"),
                        redacted_data=redacted,
                        provider=issuer,
                    )
                )
    return tuple(parts)


class LlamaIndexLLMProvider(Provider):
    """Serves an existing LlamaIndex LLM behind the manager's breakers, retries and fallbacks.

    Requests are converted to `ChatMessage`s; tools go through the LLM's own
    ``chat_with_tools`` when it is a function-calling LLM. Sync, async and streaming calls use
    the LLM's native methods. Exceptions are translated once by their HTTP status (see
    `classify_llm_error`) and raised ``from`` the original; a `ConfigurationError` (from a
    nested reliable-llm LLM, say) passes through unchanged. Turn off the wrapped LLM's own
    retries (``max_retries=0`` on most integrations) so that only the manager retries.

    Content: the wrapped LLM is taken to read text only, since no wrapper can know what it
    accepts; declare more at registration (``metadata={"capabilities": {"image": ["data"]}}``,
    see `reliable_llm.ModelCapabilities`) and parts reach it as `ImageBlock`, `AudioBlock`,
    `DocumentBlock`, `ThinkingBlock` and `CachePoint` blocks. Its `ThinkingBlock`s come back
    as the response's reasoning, issued by this provider's ``name``.

    Args:
        llm: The LlamaIndex LLM to serve.
        name: Provider name reported in responses and metrics.
        enforces_timeout: True only for an LLM whose blocking calls cannot outlive the
            per-attempt timeout (an in-process fake such as ``MockLLM``): the manager then
            calls it in the caller's thread, saving a thread hand-off (tens of µs) per call.
            By default a blocking call runs in a worker thread the manager stops waiting for
            when the timeout passes, since an HTTP client's timeout bounds each read, not the
            whole call (`reliable_llm.Provider.enforces_timeout`).

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> manager = LLMManager()
        >>> manager.register_model("mock", LlamaIndexLLMProvider(MockLLM()))
    """

    def __init__(
        self, llm: LLM, *, name: str = "llama_index", enforces_timeout: bool = False
    ) -> None:
        self.llm = llm
        self.provider_name = name
        self.enforces_timeout = enforces_timeout

    # -- request -----------------------------------------------------------------------------

    def _tools(self, request: ChatRequest) -> tuple[list[BaseTool], bool]:
        """The tools to offer and whether one must be called."""
        choice = request.tool_choice
        if not request.tools or choice == "none":
            return [], False
        llm = self.llm
        if not (isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model):
            raise InvalidRequestError(
                f"{llm.class_name()} is not a function-calling LLM; it cannot be offered tools",
                provider=self.provider_name,
            )
        tools = request.tools
        if choice not in (None, "auto", "required"):
            tools = tuple(t for t in tools if t.name == choice)
        return [_SchemaTool(t) for t in tools], choice not in (None, "auto")

    @staticmethod
    def _kwargs(request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "top_p", "seed", "response_format"):
            value = getattr(request, name)
            if value is not None:
                kwargs[name] = value
        if request.stop is not None:
            kwargs["stop"] = list(request.stop)
        kwargs.update(request.extra)
        return kwargs

    def _prepare(self, request: ChatRequest) -> tuple[list[ChatMessage], list[BaseTool], bool]:
        tools, required = self._tools(request)
        return [to_li_message(m) for m in request.messages], tools, required

    def _with_tools(
        self, messages: list[ChatMessage], tools: Sequence[BaseTool], required: bool
    ) -> dict[str, Any]:
        return {
            "tools": tools,
            "chat_history": messages,
            "allow_parallel_tool_calls": True,
            "tool_required": required,
        }

    # -- response ----------------------------------------------------------------------------

    def _tool_calls(self, response: LIChatResponse) -> tuple[ToolCall, ...]:
        llm = self.llm
        assert isinstance(llm, FunctionCallingLLM)
        selections = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        return tuple(
            ToolCall(s.tool_id, s.tool_name, json.dumps(s.tool_kwargs)) for s in selections
        )

    def _response(self, response: LIChatResponse, tools: bool) -> ChatResponse:
        calls = self._tool_calls(response) if tools else ()
        return ChatResponse(
            text=response.message.content or "",
            tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop",
            usage=_usage(response),
            provider=self.provider_name,
            provider_model=self.llm.metadata.model_name,
            reasoning=_reasoning(response, self.provider_name),
        )

    def _last_chunk(self, last: LIChatResponse | None, tools: bool) -> StreamChunk:
        calls = self._tool_calls(last) if tools and last is not None else ()
        return StreamChunk(
            tool_call_deltas=tuple(
                ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(calls)
            ),
            finish_reason="tool_calls" if calls else "stop",
            usage=None if last is None else _usage(last),
            # The last cumulative response holds the whole thinking blocks.
            reasoning_parts=() if last is None else _reasoning(last, self.provider_name),
        )

    @staticmethod
    def _delta(response: LIChatResponse, sent: int) -> str:
        if response.delta is not None:
            return response.delta
        return (response.message.content or "")[sent:]

    # -- calls -------------------------------------------------------------------------------

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Answer with the LLM's ``chat`` (or ``chat_with_tools``); blocking.

        Raises:
            ProviderError: The LLM failed; classified by `classify_llm_error`.
        """
        messages, tools, required = self._prepare(request)
        kwargs = self._kwargs(request)
        try:
            if tools:
                assert isinstance(self.llm, FunctionCallingLLM)
                response = self.llm.chat_with_tools(
                    **self._with_tools(messages, tools, required), **kwargs
                )
            else:
                response = self.llm.chat(messages, **kwargs)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise classify_llm_error(exc, provider=self.provider_name) from exc
        return self._response(response, bool(tools))

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Answer with the LLM's native ``achat`` (or ``achat_with_tools``) within ``timeout``."""
        messages, tools, required = self._prepare(request)
        kwargs = self._kwargs(request)
        try:
            async with asyncio.timeout(timeout):
                if tools:
                    assert isinstance(self.llm, FunctionCallingLLM)
                    response = await self.llm.achat_with_tools(
                        **self._with_tools(messages, tools, required), **kwargs
                    )
                else:
                    response = await self.llm.achat(messages, **kwargs)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise classify_llm_error(exc, provider=self.provider_name) from exc
        return self._response(response, bool(tools))

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        """Stream with the LLM's ``stream_chat`` (or ``stream_chat_with_tools``)."""
        messages, tools, required = self._prepare(request)
        return self._stream(messages, tools, required, self._kwargs(request))

    def _stream(
        self,
        messages: list[ChatMessage],
        tools: list[BaseTool],
        required: bool,
        kwargs: dict[str, Any],
    ) -> Iterator[StreamChunk]:
        last: LIChatResponse | None = None
        sent = 0
        try:
            if tools:
                assert isinstance(self.llm, FunctionCallingLLM)
                responses = self.llm.stream_chat_with_tools(
                    **self._with_tools(messages, tools, required), **kwargs
                )
            else:
                responses = self.llm.stream_chat(messages, **kwargs)
            for last in responses:
                delta = self._delta(last, sent)
                sent += len(delta)
                if delta:
                    yield StreamChunk(text=delta)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise classify_llm_error(exc, provider=self.provider_name) from exc
        yield self._last_chunk(last, bool(tools))

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Stream with the LLM's native ``astream_chat``; ``timeout`` bounds each wait."""
        messages, tools, required = self._prepare(request)
        kwargs = self._kwargs(request)
        last: LIChatResponse | None = None
        sent = 0
        try:
            async with asyncio.timeout(timeout):
                if tools:
                    assert isinstance(self.llm, FunctionCallingLLM)
                    responses = await self.llm.astream_chat_with_tools(
                        **self._with_tools(messages, tools, required), **kwargs
                    )
                else:
                    responses = await self.llm.astream_chat(messages, **kwargs)
            iterator = aiter(responses)
            while True:
                async with asyncio.timeout(timeout):
                    response = await anext(iterator, None)
                if response is None:
                    break
                last = response
                delta = self._delta(response, sent)
                sent += len(delta)
                if delta:
                    yield StreamChunk(text=delta)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise classify_llm_error(exc, provider=self.provider_name) from exc
        yield self._last_chunk(last, bool(tools))

    def describe(self) -> dict[str, object]:
        """Secret-free facts: the LLM class and what its metadata says about the model."""
        metadata = self.llm.metadata
        return {
            "provider": self.provider_name,
            "llm": type(self.llm).__name__,
            "model": metadata.model_name,
            "context_window": metadata.context_window,
            "max_output_tokens": metadata.num_output,
            "function_calling": metadata.is_function_calling_model,
        }

    def __repr__(self) -> str:
        return f"LlamaIndexLLMProvider({type(self.llm).__name__})"
