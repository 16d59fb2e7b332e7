"""Translating between LangChain messages and reliable-llm's chat types, both ways."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call

from langchain_reliable_llm._metadata import response_metadata
from reliable_llm import (
    ChatResponse,
    ConfigurationError,
    Message,
    ToolCall,
    Usage,
)

__all__ = [
    "from_langchain_messages",
    "to_ai_message",
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
        # The common case first: a plain-text human message.
        if type(message) is HumanMessage and isinstance(message.content, str):
            result.append(Message.user(message.content, name=message.name))
        elif isinstance(message, SystemMessage):
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
            result.append(SystemMessage(message.text))
        elif message.role == "user":
            result.append(HumanMessage(message.text, name=message.name))
        elif message.role == "assistant":
            calls = [tool_call(name=c.name, args=c.args, id=c.id) for c in message.tool_calls]
            result.append(AIMessage(message.text, tool_calls=calls))
        else:
            result.append(
                ToolMessage(message.text, tool_call_id=message.tool_call_id, name=message.name)
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


def _tool_calls(response: ChatResponse) -> tuple[list[Any], list[Any]]:
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
    return calls, invalid


def to_ai_message(response: ChatResponse) -> AIMessage:
    """Convert a response into an `AIMessage` with usage and reliability metadata."""
    metadata = response_metadata(response)
    usage = usage_metadata(response.usage)
    if not response.tool_calls:  # the common case: skip the tool-call fields' validation
        return AIMessage(content=response.text, usage_metadata=usage, response_metadata=metadata)
    calls, invalid = _tool_calls(response)
    return AIMessage(
        content=response.text,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage,
        response_metadata=metadata,
    )
