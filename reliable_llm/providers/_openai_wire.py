"""The OpenAI Chat Completions protocol: requests out, responses and stream chunks in.

Pure functions between our types and the wire / SDK objects, used by every OpenAI-shaped
provider (OpenAI, Azure OpenAI and the OpenAI-compatible presets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reliable_llm._errors import ProviderConnectionError
from reliable_llm._types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "PASSTHROUGH_EXCLUDED",
    "StreamState",
    "build_params",
    "chunk_parts",
    "finish_reason",
    "parse_completion",
    "to_usage",
]

#: ``ChatRequest.extra`` keys that never go upstream: secrets and transport settings we own.
PASSTHROUGH_EXCLUDED = frozenset(
    ("api_key", "timeout", "request_timeout", "max_retries", "headers", "extra_headers")
)

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(value: str | None) -> str:
    """An OpenAI finish reason normalized to stop / length / tool_calls / content_filter."""
    return _FINISH.get(value or "stop", "stop")


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        data["name"] = message.name
    if message.tool_calls:
        data["content"] = message.content or None
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return data


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def build_params(
    request: ChatRequest,
    model: str,
    *,
    max_tokens_param: str = "max_completion_tokens",
    default_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.completions.create`` (without streaming options).

    ``extra`` parameters of the request go to ``extra_body``, except secrets and transport
    settings (`PASSTHROUGH_EXCLUDED`); ``extra_headers`` in ``extra`` become request headers.
    """
    params: dict[str, Any] = dict(default_params or {})
    params["model"] = model
    params["messages"] = [_message(m) for m in request.messages]
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params[max_tokens_param] = request.max_tokens
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop is not None:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                },
            }
            for tool in request.tools
        ]
    if request.tool_choice is not None:
        params["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        params["response_format"] = dict(request.response_format)
    extra = {k: v for k, v in request.extra.items() if k not in PASSTHROUGH_EXCLUDED}
    if extra:
        params["extra_body"] = extra
    headers = request.extra.get("extra_headers")
    if isinstance(headers, Mapping) and headers:
        params["extra_headers"] = dict(headers)
    return params


def to_usage(usage: Any) -> Usage | None:
    """Our `Usage` from an SDK usage object (None when the provider sent none)."""
    if usage is None:
        return None
    return Usage(
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
    )


def parse_completion(completion: Any, provider: str) -> ChatResponse:
    """Our `ChatResponse` from an SDK ``ChatCompletion``.

    Raises:
        ValueError: The completion has no choices (the caller reports a malformed response).
    """
    choices = completion.choices
    if not choices:
        raise ValueError("the completion has no choices")
    choice = choices[0]
    message = choice.message
    text = message.content or ""
    reason = finish_reason(choice.finish_reason)
    refusal = getattr(message, "refusal", None)
    if refusal and not text:
        text, reason = refusal, "content_filter"
    calls = tuple(
        ToolCall(call.id, call.function.name, call.function.arguments or "{}")
        for call in message.tool_calls or ()
        if getattr(call, "function", None) is not None
    )
    return ChatResponse(
        text=text,
        tool_calls=calls,
        finish_reason=reason,
        usage=to_usage(completion.usage),
        provider=provider,
        provider_model=getattr(completion, "model", None),
    )


def chunk_parts(chunk: Any) -> tuple[StreamChunk | None, str | None, Usage | None]:
    """Split an SDK ``ChatCompletionChunk`` into (content, finish reason, usage).

    The content chunk is None when the delta carries nothing a caller can see (role-only
    and empty deltas), so no empty chunk is ever yielded. The finish reason is the raw
    value (None until the last choice delta).
    """
    usage = to_usage(getattr(chunk, "usage", None))
    if not chunk.choices:
        return None, None, usage
    choice = chunk.choices[0]
    delta = choice.delta
    text = (delta.content or "") if delta is not None else ""
    deltas: tuple[ToolCallDelta, ...] = ()
    if delta is not None and delta.tool_calls:
        deltas = tuple(
            ToolCallDelta(
                index=call.index,
                id=call.id or None,
                name=(call.function.name or None) if call.function else None,
                arguments=(call.function.arguments or "") if call.function else "",
            )
            for call in delta.tool_calls
        )
    content = StreamChunk(text=text, tool_call_deltas=deltas) if text or deltas else None
    return content, choice.finish_reason, usage


class StreamState:
    """Watches a chunk stream for its finish reason and usage; builds the closing chunk."""

    __slots__ = ("finish", "model", "usage")

    def __init__(self) -> None:
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: Any) -> StreamChunk | None:
        content, finish, usage = chunk_parts(chunk)
        if self.model is None:
            model = getattr(chunk, "model", None)
            self.model = model if isinstance(model, str) and model else None
        if finish is not None:
            self.finish = finish
        if usage is not None:
            self.usage = usage
        return content

    def closing_chunk(self) -> StreamChunk:
        """The last chunk, with finish reason and usage.

        Raises:
            ProviderConnectionError: The stream ended without a finish reason (cut off).
        """
        if self.finish is None:
            raise ProviderConnectionError("the response stream ended before the answer finished")
        return StreamChunk(
            finish_reason=finish_reason(self.finish), usage=self.usage, provider_model=self.model
        )
