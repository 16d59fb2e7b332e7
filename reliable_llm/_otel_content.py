"""GenAI convention attributes of a request and a response: parameters, and content on opt-in.

Messages follow the conventions' JSON shapes (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``), serialized to a JSON string
because span attributes hold only primitives.

Content parts map onto the conventions' part types: text ``text``, reasoning ``reasoning``,
an image, audio or document by URL ``uri``, by provider file id ``file``, and inline
base64 ``blob`` (with ``modality`` and ``mime_type``). A blob's base64 payload is not copied
into the span (a 1 MB image would be a 1.3 MB attribute): its ``content`` is left out, and
``sha256`` and ``size`` (base64 characters) identify it.
"""

from __future__ import annotations

import json
from typing import Any

from reliable_llm._content import AudioPart, FilePart, ImagePart, Part, ReasoningPart, TextPart
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


_MODALITY = {ImagePart: "image", AudioPart: "audio", FilePart: "document"}


def _part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "content": part.text}
    if isinstance(part, ReasoningPart):
        return {"type": "reasoning", "content": part.text}
    if isinstance(part, FilePart) and part.text is not None:
        return {"type": "text", "content": part.text}
    modality = _MODALITY[type(part)]
    media_type = part.media_type
    if not isinstance(part, AudioPart) and part.url is not None:
        return {"type": "uri", "modality": modality, "mime_type": media_type, "uri": part.url}
    if not isinstance(part, AudioPart) and part.file_id is not None:
        return {
            "type": "file",
            "modality": modality,
            "mime_type": media_type,
            "file_id": part.file_id,
        }
    return {
        "type": "blob",
        "modality": modality,
        "mime_type": media_type,
        "sha256": part.digest(),
        "size": len(part.data or ""),
    }


def _parts(message: Message) -> list[dict[str, Any]]:
    content = message.content
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    return [_part(p) for p in content]


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        content = message.content
        response: object = content if isinstance(content, str) else _parts(message)
        parts: list[dict[str, Any]] = [
            {"type": "tool_call_response", "id": message.tool_call_id, "response": response}
        ]
    else:
        parts = _parts(message)
        parts.extend(_call_part(call) for call in message.tool_calls)
    return {"role": message.role, "parts": parts}


def input_attributes(request: ChatRequest) -> dict[str, str]:
    """The request's messages: system text apart, the conversation as input messages."""
    system = [part for m in request.messages if m.role == "system" for part in _parts(m)]
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
