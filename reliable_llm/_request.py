"""Building a validated `ChatRequest` from what callers pass (messages, dicts, kwargs)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reliable_llm._errors import ConfigurationError
from reliable_llm._types import ChatRequest, Message, Tool, ToolCall

__all__ = ["GENERATION_PARAMS", "build_request", "check_prompt", "to_message", "to_tool"]

GENERATION_PARAMS = frozenset(
    (
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
    )
)
_TOOL_CHOICE_MODES = frozenset(("auto", "none", "required"))

MessagesInput = str | Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]


def _tool_call(data: ToolCall | Mapping[str, Any]) -> ToolCall:
    if isinstance(data, ToolCall):
        return data
    function = data.get("function", data)
    arguments = function.get("arguments", function.get("args", "{}"))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return ToolCall(id=str(data.get("id", "")), name=str(function["name"]), arguments=arguments)


def to_message(item: Message | Mapping[str, Any]) -> Message:
    """Accept a `Message` or an OpenAI-style message dict."""
    if isinstance(item, Message):
        return item
    if not isinstance(item, Mapping):
        raise ConfigurationError(
            f"messages must be Message objects or dicts with 'role' and 'content', got "
            f"{type(item).__name__}"
        )
    if "role" not in item:
        raise ConfigurationError(f"message dict needs a 'role' key, got keys {sorted(item)}")
    content = item.get("content")
    return Message(
        role=item["role"],
        content="" if content is None else content,
        tool_calls=tuple(_tool_call(c) for c in item.get("tool_calls") or ()),
        tool_call_id=item.get("tool_call_id"),
        name=item.get("name"),
    )


def to_tool(item: Tool | Mapping[str, Any]) -> Tool:
    """Accept a `Tool`, an OpenAI function-tool dict or a bare function schema dict."""
    if isinstance(item, Tool):
        return Tool(item.name, item.description, dict(item.parameters))
    if not isinstance(item, Mapping):
        raise ConfigurationError(
            f"tools must be Tool objects or OpenAI-style tool dicts, got {type(item).__name__}"
        )
    function = item.get("function", item)
    if "name" not in function:
        raise ConfigurationError(f"tool definition needs a 'name', got keys {sorted(function)}")
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return Tool(str(function["name"]), str(function.get("description") or ""), dict(parameters))


def _tool_choice(value: object, tools: tuple[Tool, ...]) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        function = value.get("function", value)
        value = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(value, str):
        raise ConfigurationError(
            "tool_choice must be 'auto', 'none', 'required', a tool name, or "
            f"{{'type': 'function', 'function': {{'name': ...}}}}; got {value!r}"
        )
    if value not in _TOOL_CHOICE_MODES and value not in {t.name for t in tools}:
        names = sorted(t.name for t in tools)
        raise ConfigurationError(
            f"tool_choice {value!r} names no tool of the request; tools: {names or 'none'}"
        )
    return value


def _messages(messages: MessagesInput) -> tuple[Message, ...]:
    if isinstance(messages, str):
        return (Message("user", messages),)
    if isinstance(messages, Message | Mapping):
        return (to_message(messages),)
    result = tuple(to_message(m) for m in messages)
    if not result:
        raise ConfigurationError("messages must not be empty; pass at least one user message")
    return result


def build_request(messages: MessagesInput, params: Mapping[str, Any]) -> ChatRequest:
    """Build a request; generation parameters are checked, unknown ones pass through as extra.

    Raises:
        ConfigurationError: a message, tool or parameter is malformed.
    """
    if not params:
        return ChatRequest(_messages(messages))
    extra = {k: v for k, v in params.items() if k not in GENERATION_PARAMS}
    tools = tuple(to_tool(t) for t in params.get("tools") or ())
    stop = params.get("stop")
    if isinstance(stop, str):
        stop = (stop,)
    elif stop is not None:
        stop = tuple(stop)
    response_format = params.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, Mapping) or "type" not in response_format:
            raise ConfigurationError(
                "response_format must be a dict like {'type': 'json_object'} or "
                f"{{'type': 'json_schema', 'json_schema': {{...}}}}; got {response_format!r}"
            )
        response_format = dict(response_format)
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ConfigurationError(f"max_tokens must be a positive int, got {max_tokens!r}")
    return ChatRequest(
        messages=_messages(messages),
        temperature=params.get("temperature"),
        max_tokens=max_tokens,
        top_p=params.get("top_p"),
        stop=stop,
        seed=params.get("seed"),
        tools=tools,
        tool_choice=_tool_choice(params.get("tool_choice"), tools),
        response_format=response_format,
        extra=extra,
    )


def check_prompt(prompt: object) -> None:
    """Raise `ConfigurationError` unless ``prompt`` is a str."""
    if not isinstance(prompt, str):
        raise ConfigurationError(f"prompt must be a str, got {type(prompt).__name__}")
