"""GenAI convention attributes of a request and a response: parameters, and content on opt-in.

Messages follow the conventions' JSON shapes (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``), serialized to a JSON string
because span attributes hold only primitives.
"""

from __future__ import annotations

import json
from typing import Any

from reliable_llm._types import ChatRequest, ChatResponse, Message, ToolCall

__all__ = ["input_attributes", "output_attributes", "request_attributes"]


def request_attributes(request: ChatRequest) -> dict[str, Any]:
    """The request's generation parameters as ``gen_ai.request.*`` attributes."""
    attributes: dict[str, Any] = {}
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.top_p is not None:
        attributes["gen_ai.request.top_p"] = request.top_p
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = request.stop
    if request.seed is not None:
        attributes["gen_ai.request.seed"] = request.seed
    if request.response_format is not None:
        attributes["gen_ai.output.type"] = "json"
    return attributes


def _call_part(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.args}


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        parts: list[dict[str, Any]] = [
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        ]
    else:
        parts = [{"type": "text", "content": message.content}] if message.content else []
        parts.extend(_call_part(call) for call in message.tool_calls)
    return {"role": message.role, "parts": parts}


def input_attributes(request: ChatRequest) -> dict[str, str]:
    """The request's messages: system text apart, the conversation as input messages."""
    system = [
        {"type": "text", "content": m.content} for m in request.messages if m.role == "system"
    ]
    conversation = [_message(m) for m in request.messages if m.role != "system"]
    attributes = {"gen_ai.input.messages": json.dumps(conversation, ensure_ascii=False)}
    if system:
        attributes["gen_ai.system_instructions"] = json.dumps(system, ensure_ascii=False)
    return attributes


def output_attributes(response: ChatResponse) -> dict[str, str]:
    """The answer as one output message."""
    message = _message(response.message)
    message["finish_reason"] = response.finish_reason
    return {"gen_ai.output.messages": json.dumps([message], ensure_ascii=False)}
