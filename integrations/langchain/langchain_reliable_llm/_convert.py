"""Translating between LangChain messages and reliable-llm's chat types, both ways."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call

from langchain_reliable_llm._content import message_parts, part_blocks, reasoning_blocks
from langchain_reliable_llm._metadata import response_metadata
from reliable_llm import (
    ChatResponse,
    ConfigurationError,
    Message,
    Part,
    ToolCall,
    Usage,
)

__all__ = [
    "from_langchain_messages",
    "to_ai_message",
    "to_langchain_messages",
    "usage_metadata",
]

_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}


def _content(message: BaseMessage, provider: str | None = None) -> str | tuple[Part, ...]:
    content, results = message_parts(message, type(message).__name__, provider=provider)
    if results:
        raise ConfigurationError(
            f"a {type(message).__name__} holds Anthropic tool_result blocks; send tool results "
            "as ToolMessages (or in a HumanMessage)"
        )
    return content


def _human(message: BaseMessage, result: list[Message]) -> None:
    """A human message; Anthropic-style ``tool_result`` blocks in it become tool messages
    (first, as Anthropic requires them at the start of the user turn)."""
    content, results = message_parts(message, type(message).__name__)
    for tool_result in results:
        result.append(Message.tool(tool_result.content, tool_result.tool_call_id))
    if not results or content:
        result.append(Message.user(content, name=message.name))


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

    Text stays text; other content becomes parts (see `langchain_reliable_llm._content`
    for the block formats read). Anthropic ``tool_result`` blocks in a human message become
    tool messages.

    Raises:
        ConfigurationError: A message holds a content block no provider takes, a malformed
            block, a part its role cannot carry, or has a role reliable-llm does not know.
    """
    result: list[Message] = []
    for message in messages:
        # The common case first: a plain-text human message.
        if type(message) is HumanMessage and isinstance(message.content, str):
            result.append(Message.user(message.content, name=message.name))
        elif isinstance(message, SystemMessage):
            system = message.content
            result.append(Message.system(system if type(system) is str else _content(message)))
        elif isinstance(message, HumanMessage):
            _human(message, result)
        elif isinstance(message, AIMessage):
            # Reasoning blocks that do not name their issuer are the producing model's
            # (LangChain's ``model_provider``).
            text = message.content
            if type(text) is str:
                result.append(Message.assistant(text, _core_tool_calls(message)))
            else:
                provider = message.response_metadata.get("model_provider")
                parts = _content(message, provider)
                result.append(Message.assistant(parts, _core_tool_calls(message)))
        elif isinstance(message, ToolMessage):
            result.append(Message.tool(_content(message), message.tool_call_id, name=message.name))
        elif isinstance(message, ChatMessage) and _ROLES.get(message.role) == "user":
            _human(message, result)
        elif isinstance(message, ChatMessage) and message.role in _ROLES:
            result.append(Message("assistant", _content(message)))
        elif isinstance(message, ChatMessage) and message.role == "system":
            result.append(Message.system(_content(message)))
        else:
            raise ConfigurationError(
                f"cannot send a {type(message).__name__} "
                f"(role {getattr(message, 'role', message.type)!r}) through reliable-llm; "
                "use system, human, AI or tool messages"
            )
    return result


def _lc_content(message: Message) -> str | list[Any]:
    content = message.content
    return content if isinstance(content, str) else part_blocks(content)


def to_langchain_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """Convert reliable-llm messages into LangChain messages (parts as standard blocks)."""
    result: list[BaseMessage] = []
    for message in messages:
        content = _lc_content(message)
        if message.role == "system":
            result.append(SystemMessage(content))
        elif message.role == "user":
            result.append(HumanMessage(content, name=message.name))
        elif message.role == "assistant":
            calls = [tool_call(name=c.name, args=c.args, id=c.id) for c in message.tool_calls]
            result.append(AIMessage(content, tool_calls=calls))
        else:
            result.append(
                ToolMessage(content, tool_call_id=message.tool_call_id, name=message.name)
            )
    return result


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    """LangChain's usage dict for a reliable-llm `Usage`.

    ``input_token_details`` (``cache_read``, ``cache_creation``: input tokens read from or
    written to the provider's prompt cache) and ``output_token_details`` (``reasoning``:
    output tokens spent reasoning) are present when the provider reported any such tokens,
    with the counts it gave, as LangChain's ``UsageMetadata`` defines them.
    """
    if usage is None:
        return None
    metadata = UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )
    if usage.cache_read_tokens or usage.cache_creation_tokens:
        metadata["input_token_details"] = InputTokenDetails(
            cache_read=usage.cache_read_tokens, cache_creation=usage.cache_creation_tokens
        )
    if usage.reasoning_tokens:
        metadata["output_token_details"] = OutputTokenDetails(reasoning=usage.reasoning_tokens)
    return metadata


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


def _answer_content(response: ChatResponse) -> str | list[Any]:
    """The answer's text, or, with reasoning, standard blocks: reasoning first, then text."""
    if not response.reasoning:
        return response.text
    blocks: list[Any] = reasoning_blocks(response.reasoning)
    if response.text:
        blocks.append({"type": "text", "text": response.text})
    return blocks


def to_ai_message(response: ChatResponse) -> AIMessage:
    """Convert a response into an `AIMessage` with usage and reliability metadata.

    The content is the answer's text; when the model reasoned, it is LangChain standard
    blocks instead: ``reasoning`` blocks (with the provider's signature, redacted data and
    name in ``extras``, so the message can be sent back as is), then a ``text`` block.
    ``response_metadata["content_changes"]`` lists what the route changed in the request's
    content for the models it tried (cache markers or reasoning stripped, parts converted).
    """
    metadata = response_metadata(response)
    usage = usage_metadata(response.usage)
    content = _answer_content(response) if response.reasoning else response.text
    if not response.tool_calls:  # the common case: skip the tool-call fields' validation
        return AIMessage(content=content, usage_metadata=usage, response_metadata=metadata)
    calls, invalid = _tool_calls(response)
    return AIMessage(
        content=content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage,
        response_metadata=metadata,
    )
