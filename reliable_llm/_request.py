"""Building a validated `ChatRequest` from what callers pass (messages, dicts, kwargs)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from reliable_llm._content_dicts import parts_from_dicts
from reliable_llm._errors import ConfigurationError
from reliable_llm._types import ChatRequest, Message, Tool, ToolCall, check_text

__all__ = [
    "GENERATION_PARAMS",
    "NEVER_KEYED",
    "build_request",
    "check_flag",
    "check_prompt",
    "request_params",
    "to_message",
    "to_tool",
]

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

NEVER_KEYED = frozenset(
    ("api_key", "timeout", "request_timeout", "extra_headers", "headers", "max_retries")
)
"""Parameters that never change the answer and may hold secrets or transport settings: never
sent as request-body fields (providers use them as transport options; ``extra_headers`` become
headers) and never part of a cache key. The one such set, shared by the cache and providers."""

# ensure_ascii=False keeps a lone surrogate as itself, so check_text below can catch it.
_strict_dumps = json.JSONEncoder(allow_nan=False, ensure_ascii=False).encode

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
    """Accept a `Message` or an OpenAI-style message dict (its ``content`` a str, or a list of
    OpenAI-style content-part dicts and parts; see `reliable_llm._content_dicts`)."""
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
    if isinstance(content, list):  # OpenAI-style content parts
        content = tuple(parts_from_dicts(content))
    return Message(
        role=item["role"],
        content="" if content is None else content,  # checked by Message
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
    if not isinstance(messages, Sequence) or isinstance(messages, bytes | bytearray):
        raise ConfigurationError(
            "messages must be a prompt str, a Message, a message dict, or a list of them; "
            f"got {type(messages).__name__}"
        )
    result = tuple(to_message(m) for m in messages)  # type: ignore[arg-type]
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
    stop = _stop(params.get("stop"))
    response_format = params.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, Mapping) or "type" not in response_format:
            raise ConfigurationError(
                "response_format must be a dict like {'type': 'json_object'} or "
                f"{{'type': 'json_schema', 'json_schema': {{...}}}}; got {response_format!r}"
            )
        response_format = dict(response_format)
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise ConfigurationError(f"max_tokens must be a positive int, got {max_tokens!r}")
    seed = params.get("seed")
    if seed is not None and not _is_int(seed):
        raise ConfigurationError(f"seed must be an int, got {seed!r}")
    for name, value in extra.items():
        _check_json(name, value)
    if response_format:
        _check_json("response_format", response_format)
    if tools:
        _check_json("tools", [[t.name, t.description, t.parameters] for t in tools])
    return ChatRequest(
        messages=_messages(messages),
        temperature=_number("temperature", params.get("temperature")),
        max_tokens=max_tokens,
        top_p=_number("top_p", params.get("top_p")),
        stop=stop,
        seed=seed,
        tools=tools,
        tool_choice=_tool_choice(params.get("tool_choice"), tools),
        response_format=response_format,
        extra=extra,
    )


def check_prompt(prompt: object) -> None:
    """Raise `ConfigurationError` unless ``prompt`` is a str that can be sent."""
    if not isinstance(prompt, str):
        raise ConfigurationError(f"prompt must be a str, got {type(prompt).__name__}")
    if not prompt.isascii():
        check_text("prompt", prompt)


def check_flag(name: str, value: object) -> None:
    """Raise `ConfigurationError` unless ``value`` is a bool (or None, meaning the default)."""
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number such as 0.7, got {value!r}")
    return value


def _stop(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.isascii():
            check_text("stop", value)
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        for v in value:
            if not v.isascii():
                check_text("stop", v)
        return tuple(value)
    raise ConfigurationError(
        f"stop must be a str or a list of str such as ['\\n\\n'], got {value!r}"
    )


def _check_json(name: str, value: object) -> None:
    try:
        text = _strict_dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{name} cannot be sent as JSON ({exc}); pass str, int, finite float, bool, None, "
            "and lists and dicts of them (no NaN, infinity, cycles or objects)"
        ) from None
    check_text(name, text)


def request_params(request: ChatRequest) -> dict[str, Any]:
    """The one projection of a request into keyword parameters, as a model receives them.

    Only parameters that were set appear; ``stop`` is a list, ``tools`` a list of `Tool`,
    and ``extra`` is merged in unchanged.
    """
    # Attribute reads, not a getattr loop: this runs on every call of a plain callable.
    kwargs: dict[str, Any] = {}
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        kwargs["max_tokens"] = request.max_tokens
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.stop is not None:
        kwargs["stop"] = list(request.stop)
    if request.tools:
        kwargs["tools"] = list(request.tools)
    if request.tool_choice is not None:
        kwargs["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format
    if request.extra:
        kwargs.update(request.extra)
    return kwargs
