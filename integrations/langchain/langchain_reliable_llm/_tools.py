"""Tools in LangChain's forms, made into the OpenAI-style dicts reliable-llm requests carry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from reliable_llm import ConfigurationError

__all__ = ["format_tools", "normalize_tools", "tool_choice_for"]

ToolLike = dict[str, Any] | type | Callable[..., Any] | BaseTool


def format_tools(tools: Sequence[ToolLike], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """OpenAI tool dicts for LangChain tools, functions, Pydantic classes or tool dicts."""
    return [
        t
        if isinstance(t, dict) and "function" in t and strict is None
        else convert_to_openai_tool(t, strict=strict)
        for t in tools
    ]


def tool_choice_for(choice: Any, tool_names: Sequence[str]) -> str | None:
    """Translate LangChain's ``tool_choice`` values into reliable-llm's.

    ``"any"`` and ``True`` force a tool call (``"required"``); a dict names one tool.

    Raises:
        ConfigurationError: ``choice`` is of a form that names no mode or tool.
    """
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, Mapping):
        function = choice.get("function", choice)
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str):
            return name
    if isinstance(choice, str):
        return choice
    raise ConfigurationError(
        "tool_choice must be 'auto', 'none', 'any', 'required', True, a tool name or "
        f"{{'type': 'function', 'function': {{'name': ...}}}}; got {choice!r} "
        f"(tools: {list(tool_names)})"
    )


def normalize_tools(options: dict[str, Any]) -> None:
    """Accept tools and tool_choice bound with ``bind(...)`` in LangChain's forms too."""
    tools = format_tools(options.get("tools") or ())
    if tools:
        options["tools"] = tools
    if "tool_choice" in options:
        names = [t["function"]["name"] for t in tools]
        options["tool_choice"] = tool_choice_for(options["tool_choice"], names)
