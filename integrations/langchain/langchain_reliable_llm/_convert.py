"""Translating between LangChain messages and reliable-llm's chat types, both ways."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk

from reliable_llm import (
    ChatResponse,
    ConfigurationError,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "from_langchain_messages",
    "response_metadata",
    "to_ai_message",
    "to_ai_message_chunk",
    "to_langchain_messages",
    "usage_metadata",
]

# Content blocks that carry data our text-only `Message` cannot hold.
_MEDIA_BLOCKS = frozenset(
    ("image", "image_url", "file", "audio", "input_audio", "video", "document", "pdf")
)
_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    for block in content:
        if isinstance(block, Mapping) and block.get("type") in _MEDIA_BLOCKS:
            raise ConfigurationError(
                f"{type(message).__name__} holds a {block.get('type')!r} content block; "
                "reliable-llm messages are text-only, so multimodal inputs are not supported"
            )
    return message.text


def _core_tool_calls(message: AIMessage) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(
            id=call.get("id") or f"call_{index}",
            name=call["name"],
            arguments=json.dumps(call.get("args") or {}, ensure_ascii=False),
        )
        for index, call in enumerate(message.tool_calls)
    )


def from_langchain_messages(messages: Iterable[BaseMessage]) -> list[Message]:
    """Convert LangChain messages into reliable-llm messages.

    Raises:
        ConfigurationError: A message carries media (images, files, audio) or has a role
            reliable-llm does not know.
    """
    result: list[Message] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            result.append(Message.system(_text(message)))
        elif isinstance(message, HumanMessage):
            result.append(Message.user(_text(message), name=message.name))
        elif isinstance(message, AIMessage):
            result.append(Message.assistant(_text(message), _core_tool_calls(message)))
        elif isinstance(message, ToolMessage):
            result.append(Message.tool(_text(message), message.tool_call_id, name=message.name))
        elif isinstance(message, ChatMessage) and message.role in _ROLES:
            result.append(Message(_ROLES[message.role], _text(message)))  # type: ignore[arg-type]
        elif isinstance(message, ChatMessage) and message.role == "system":
            result.append(Message.system(_text(message)))
        else:
            raise ConfigurationError(
                f"cannot send a {type(message).__name__} "
                f"(role {getattr(message, 'role', message.type)!r}) through reliable-llm; "
                "use system, human, AI or tool messages"
            )
    return result


def to_langchain_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """Convert reliable-llm messages into LangChain messages."""
    result: list[BaseMessage] = []
    for message in messages:
        if message.role == "system":
            result.append(SystemMessage(message.content))
        elif message.role == "user":
            result.append(HumanMessage(message.content, name=message.name))
        elif message.role == "assistant":
            calls = [tool_call(name=c.name, args=c.args, id=c.id) for c in message.tool_calls]
            result.append(AIMessage(message.content, tool_calls=calls))
        else:
            result.append(
                ToolMessage(message.content, tool_call_id=message.tool_call_id, name=message.name)
            )
    return result


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    """LangChain's usage dict for a reliable-llm `Usage`."""
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def response_metadata(
    *,
    model: str,
    provider: str,
    provider_model: str | None,
    finish_reason: str | None,
    cached: bool,
    route: Sequence[str],
    attempts: Iterable[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """The response metadata LangChain users and tracers see.

    ``fallback_from`` lists the models given up before ``model_name`` answered (models whose
    breaker was open included); ``attempts`` lists every upstream call, when known.
    """
    given_up = list(route[: route.index(model)]) if model in route else []
    metadata: dict[str, Any] = {
        "model_name": model,
        "provider": provider,
        "finish_reason": finish_reason,
        "cached": cached,
        "fallbacks": len(given_up),
        "fallback_from": given_up,
    }
    if provider_model:
        metadata["provider_model"] = provider_model
    if attempts is not None:
        metadata["attempts"] = list(attempts)
    return metadata


def _attempts(response: ChatResponse) -> list[dict[str, Any]]:
    return [
        {
            "model": a.model,
            "number": a.number,
            "duration": a.duration,
            "error": None if a.error is None else type(a.error).__name__,
            "message": None if a.error is None else str(a.error),
        }
        for a in response.attempts
    ]


def to_ai_message(response: ChatResponse, route: Sequence[str]) -> AIMessage:
    """Convert a response into an `AIMessage` with usage and reliability metadata."""
    calls = []
    invalid = []
    for call in response.tool_calls:
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            invalid.append(
                invalid_tool_call(name=call.name, args=call.arguments, id=call.id, error=str(exc))
            )
            continue
        if isinstance(args, dict):
            calls.append(tool_call(name=call.name, args=args, id=call.id))
        else:
            invalid.append(
                invalid_tool_call(
                    name=call.name,
                    args=call.arguments,
                    id=call.id,
                    error="arguments are not a JSON object",
                )
            )
    metadata = response_metadata(
        model=response.model,
        provider=response.provider,
        provider_model=response.provider_model,
        finish_reason=response.finish_reason,
        cached=response.cached,
        route=route,
        attempts=_attempts(response),
    )
    if response.cost is not None:
        metadata["cost"] = response.cost
    if response.response_id is not None:
        metadata["id"] = response.response_id
    return AIMessage(
        content=response.text,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(response.usage),
        response_metadata=metadata,
    )


def _deltas(deltas: Sequence[ToolCallDelta]) -> list[Any]:
    return [
        tool_call_chunk(name=d.name, args=d.arguments or None, id=d.id, index=d.index)
        for d in deltas
    ]


def to_ai_message_chunk(chunk: StreamChunk) -> AIMessageChunk:
    """Convert a text or tool-call stream chunk (no usage, no metadata) into LangChain's."""
    return AIMessageChunk(content=chunk.text, tool_call_chunks=_deltas(chunk.tool_call_deltas))
