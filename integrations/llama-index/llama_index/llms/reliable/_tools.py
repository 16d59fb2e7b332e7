"""Offering LlamaIndex tools through `ReliableLLM` and reading the calls back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.llms.reliable._convert import from_li_tool

if TYPE_CHECKING:
    from llama_index.core.tools import BaseTool

__all__ = ["chat_kwargs_with_tools", "keep_first_tool_call"]


def chat_kwargs_with_tools(
    tools: Sequence[BaseTool],
    user_msg: str | ChatMessage | None,
    chat_history: Sequence[ChatMessage] | None,
    tool_required: bool,
    tool_choice: str | Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``chat`` arguments that offer ``tools``: JSON-schema tools and a tool choice.

    ``tool_choice`` (a tool name, ``"auto"``, ``"none"``, ``"required"`` or an OpenAI dict)
    wins over ``tool_required``.
    """
    messages = list(chat_history or [])
    if isinstance(user_msg, str):
        messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.append(user_msg)
    prepared: dict[str, Any] = {"messages": messages, **kwargs}
    if tools:
        prepared["tools"] = [from_li_tool(t) for t in tools]
        if tool_choice is not None:
            prepared["tool_choice"] = tool_choice
        elif tool_required:
            prepared["tool_choice"] = "required"
    return prepared


def keep_first_tool_call(response: LIChatResponse) -> LIChatResponse:
    """Drop every tool call after the first (for callers that disallow parallel calls)."""
    blocks = response.message.blocks
    calls = [b for b in blocks if isinstance(b, ToolCallBlock)]
    if len(calls) > 1:
        response.message.blocks = [
            b for b in blocks if not isinstance(b, ToolCallBlock) or b is calls[0]
        ]
    return response
