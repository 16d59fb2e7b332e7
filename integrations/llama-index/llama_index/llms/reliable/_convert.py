"""Translating between LlamaIndex chat types and reliable-llm's.

LlamaIndex carries tool calls as `ToolCallBlock`s in ``ChatMessage.blocks`` (what the installed
agents and memory expect); older integrations put OpenAI-shaped calls in
``additional_kwargs["tool_calls"]``. We read both and write blocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json
from llama_index.llms.reliable._content import message_content, part_blocks
from llama_index.llms.reliable._metadata import response_info

from reliable_llm import ChatResponse, ConfigurationError, Message, Tool, ToolCall

if TYPE_CHECKING:
    from llama_index.core.tools import BaseTool

__all__ = [
    "from_li_message",
    "from_li_messages",
    "from_li_tool",
    "to_li_message",
    "to_li_response",
    "tool_call_blocks",
    "tool_selections",
]

_ROLES: dict[str, str] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}


def _arguments_text(arguments: object) -> str:
    if isinstance(arguments, str):
        return arguments or "{}"
    return json.dumps(arguments if arguments is not None else {})


def _legacy_tool_call(item: object) -> ToolCall:
    """An OpenAI-shaped tool call: a dict, or an SDK object with ``id`` and ``function``."""
    if isinstance(item, Mapping):
        function = item.get("function", item)
        name = function.get("name", "")
        arguments = function.get("arguments", function.get("args", "{}"))
        return ToolCall(str(item.get("id", "") or ""), str(name), _arguments_text(arguments))
    function = getattr(item, "function", item)
    return ToolCall(
        str(getattr(item, "id", "") or ""),
        str(getattr(function, "name", "")),
        _arguments_text(getattr(function, "arguments", "{}")),
    )


def _tool_calls(message: ChatMessage) -> tuple[ToolCall, ...]:
    calls = [
        ToolCall(block.tool_call_id or "", block.tool_name, _arguments_text(block.tool_kwargs))
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]
    if not calls:
        calls = [_legacy_tool_call(c) for c in message.additional_kwargs.get("tool_calls") or ()]
    return tuple(calls)


def from_li_message(message: ChatMessage) -> Message:
    """Convert a LlamaIndex `ChatMessage` to a reliable-llm `Message`.

    Text blocks become text; images, audio, documents, thinking and cache points become
    parts (see `llama_index.llms.reliable._content`).

    Raises:
        ConfigurationError: The message has an unknown role, a block no provider takes, a
            part its role cannot carry, or is a tool result without the ``tool_call_id`` it
            answers.
    """
    role = _ROLES.get(MessageRole(message.role).value)
    if role is None:  # pragma: no cover - every MessageRole is mapped
        raise ConfigurationError(f"unsupported message role {message.role!r}")
    extra = message.additional_kwargs
    name = extra.get("name")
    name = name if isinstance(name, str) else None
    text = message_content(message)
    if role == "tool":
        call_id = extra.get("tool_call_id") or extra.get("tool_use_id")
        if not call_id:
            raise ConfigurationError(
                "a tool message needs additional_kwargs['tool_call_id'] naming the call it answers"
            )
        return Message.tool(text, str(call_id), name=name)
    if role == "assistant":
        return Message("assistant", text, _tool_calls(message), name=name)
    return Message(role, text, name=name)  # type: ignore[arg-type]


def from_li_messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """Convert a LlamaIndex conversation (see `from_li_message`)."""
    return [from_li_message(m) for m in messages]


def from_li_tool(tool: BaseTool) -> Tool:
    """Describe a LlamaIndex tool as a reliable-llm `Tool` (name, description, JSON schema)."""
    metadata = tool.metadata
    return Tool(metadata.get_name(), metadata.description, metadata.get_parameters_dict())


def tool_call_blocks(calls: Sequence[ToolCall]) -> list[ToolCallBlock]:
    """Tool calls as LlamaIndex blocks; arguments that are not a JSON object stay text."""
    blocks = []
    for call in calls:
        try:
            kwargs: dict[str, Any] | str = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            kwargs = call.arguments
        if not isinstance(kwargs, dict):
            kwargs = call.arguments
        blocks.append(ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=kwargs))
    return blocks


def to_li_message(message: Message) -> ChatMessage:
    """Convert a reliable-llm `Message` to a LlamaIndex `ChatMessage`.

    Parts become LlamaIndex blocks (reasoning a `ThinkingBlock`, an image an `ImageBlock`...).
    Tool calls become `ToolCallBlock`s and are also listed OpenAI-style in
    ``additional_kwargs["tool_calls"]``: LlamaIndex's streaming structured output
    (``stream_structured_predict``) looks there before it parses a partial response.
    """
    extra: dict[str, Any] = {}
    if message.tool_calls:
        extra["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        extra["tool_call_id"] = message.tool_call_id
    if message.name:
        extra["name"] = message.name
    content = message.content
    blocks: list[Any]
    if isinstance(content, str):
        blocks = [TextBlock(text=content)] if content else []
    else:
        blocks = part_blocks(content)
    blocks.extend(tool_call_blocks(message.tool_calls))
    if not blocks:
        blocks.append(TextBlock(text=""))
    return ChatMessage(role=MessageRole(message.role), blocks=blocks, additional_kwargs=extra)


def to_li_response(response: ChatResponse) -> LIChatResponse:
    """Convert a reliable-llm `ChatResponse` into a LlamaIndex one.

    ``raw`` is the JSON-compatible `ChatResponse.to_dict` (agents serialize it);
    ``additional_kwargs`` says which model answered, whether from cache, token counts, and
    (``content_changes``) what the route changed in the request's content for the models it
    tried. The model's reasoning comes first in the message's blocks, as `ThinkingBlock`s.
    """
    message = to_li_message(response.message)
    return LIChatResponse(
        message=message,
        raw=response.to_dict(),
        delta=None,
        additional_kwargs=response_info(response),
    )


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """The tool calls of an assistant message as LlamaIndex `ToolSelection`s.

    Arguments still streaming in are parsed leniently, as LlamaIndex's own LLMs do.
    """
    selections = []
    for call in _tool_calls(message):
        try:
            kwargs = parse_partial_json(call.arguments) if call.arguments else {}
        except (ValueError, TypeError):
            kwargs = {}
        if not isinstance(kwargs, dict):
            kwargs = {}
        selections.append(ToolSelection(tool_id=call.id, tool_name=call.name, tool_kwargs=kwargs))
    return selections
