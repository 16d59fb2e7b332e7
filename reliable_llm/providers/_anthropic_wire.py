"""The Anthropic Messages protocol: requests out, messages and stream events in.

Conversions: system messages become the separate ``system`` prompt; assistant tool calls
become ``tool_use`` blocks; tool messages become ``tool_result`` blocks of a user turn
(consecutive results, like any consecutive turns of one role, merge into one message).

Structured output: Anthropic has no JSON mode, so ``response_format`` is emulated with a
forced tool whose input schema is the requested schema (``json_object`` uses an open
object schema). The tool's input comes back as the answer text, and a streamed answer
streams that JSON as text. Combining ``response_format`` with tools is rejected with
`InvalidRequestError` (forcing the schema tool would keep the model from calling them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reliable_llm._content import FilePart, ImagePart, Part, ReasoningPart, TextPart
from reliable_llm._errors import InvalidRequestError, ProviderConnectionError
from reliable_llm._stream import ToolCallAssembler
from reliable_llm._types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from reliable_llm.providers._openai_wire import PASSTHROUGH_EXCLUDED
from reliable_llm.providers._outcome import REFUSAL, check_answer

__all__ = ["StreamState", "build_params", "finish_reason", "parse_message", "to_usage"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "error": "error",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": REFUSAL,
}
_JSON_TOOL = "json_response"
_OPEN_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def finish_reason(stop_reason: str | None, *, json_tool: str | None = None) -> str:
    """An Anthropic stop reason normalized to stop / length / tool_calls / refusal / error.

    Others (``pause_turn``: the turn is not over) are passed through as sent; such an answer
    is returned but never cached.
    """
    if stop_reason == "tool_use" and json_tool is not None:
        return "stop"
    if not stop_reason:
        return "stop"
    return _FINISH.get(stop_reason, stop_reason)


def _source(part: ImagePart | FilePart) -> dict[str, Any]:
    if part.data is not None:
        return {"type": "base64", "media_type": part.media_type, "data": part.data}
    if part.url is not None:
        return {"type": "url", "url": part.url}
    return {"type": "file", "file_id": part.file_id}


def _block(part: Part) -> dict[str, Any]:
    """One content part as a Messages content block (the SDK's ``*BlockParam`` shapes).

    Text is ``text``; an image is ``image`` with a ``base64``, ``url`` or ``file`` source; a
    document is ``document`` with a ``base64``, ``url``, ``file`` or ``text`` source (and its
    ``title``); reasoning is ``thinking`` with its ``signature``, or ``redacted_thinking``
    with its ``data``. A part's `CacheControl` becomes the block's ``cache_control``.

    Raises:
        InvalidRequestError: Audio (the Messages API takes none; the route skips models that
            cannot take it, so only a model declared wrongly gets here).
    """
    if isinstance(part, ReasoningPart):
        if part.redacted_data is not None:
            return {"type": "redacted_thinking", "data": part.redacted_data}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    if isinstance(part, TextPart):
        block: dict[str, Any] = {"type": "text", "text": part.text}
    elif isinstance(part, ImagePart):
        block = {"type": "image", "source": _source(part)}
    elif isinstance(part, FilePart):
        if part.text is not None:
            source = {"type": "text", "media_type": "text/plain", "data": part.text}
        elif part.data is not None and (part.media_type or "").startswith("text/"):
            text = (part.raw or b"").decode("utf-8", "replace")
            source = {"type": "text", "media_type": "text/plain", "data": text}
        else:
            source = _source(part)
        block = {"type": "document", "source": source}
        if part.title is not None:
            block["title"] = part.title
    else:
        raise InvalidRequestError("the Anthropic Messages API takes no audio input")
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control.to_wire()
    return block


def _blocks(message: Message) -> list[dict[str, Any]]:
    content = message.content
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        result["content"] = content if isinstance(content, str) else list(map(_block, content))
        return [result]
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    else:
        blocks.extend(map(_block, content))
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.args})
    return blocks


def _system(system: list[Message]) -> str | list[dict[str, Any]] | None:
    """The ``system`` parameter: a string, or text blocks when a part carries a cache marker
    (the form that can hold ``cache_control``)."""
    if all(isinstance(m.content, str) for m in system) or not any(
        p.cache_control is not None for m in system for p in m.parts if type(p) is TextPart
    ):
        return "\n\n".join([m.text for m in system if m.content]) or None
    return [_block(part) for m in system for part in m.parts]


def _messages(
    messages: tuple[Message, ...],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    system: list[Message] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return _system(system) if system else None, turns


def _json_tool(response_format: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"name": _JSON_TOOL, "input_schema": _OPEN_OBJECT}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        name = spec.get("name") or _JSON_TOOL
        tool: dict[str, Any] = {
            "name": name,
            "input_schema": dict(spec.get("schema") or _OPEN_OBJECT),
        }
        if spec.get("description"):
            tool["description"] = spec["description"]
        return tool
    raise InvalidRequestError(f"response_format type {kind!r} is not supported by Anthropic")


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def build_params(
    request: ChatRequest,
    model: str,
    *,
    max_tokens: int,
    default_params: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Keyword arguments for ``client.messages.create``, and the name of the JSON tool, if any.

    ``seed`` has no Anthropic equivalent and is not sent.

    Raises:
        InvalidRequestError: ``response_format`` is combined with tools, or unknown.
    """
    params: dict[str, Any] = dict(default_params or {})
    system, turns = _messages(request.messages)
    params["model"] = model
    params["messages"] = turns
    params["max_tokens"] = request.max_tokens or params.get("max_tokens") or max_tokens
    if system is not None:
        params["system"] = system
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop is not None:
        params["stop_sequences"] = list(request.stop)
    tools: list[dict[str, Any]] = []
    for t in request.tools:
        tool: dict[str, Any] = {"name": t.name, "input_schema": dict(t.parameters)}
        if t.description:
            tool["description"] = t.description
        tools.append(tool)
    json_tool = None
    if request.response_format is not None:
        forced = _json_tool(request.response_format)
        if forced is not None:
            if tools:
                raise InvalidRequestError(
                    "Anthropic has no JSON mode; reliable-llm emulates response_format with a "
                    "forced tool, which cannot be combined with other tools"
                )
            tools = [forced]
            json_tool = forced["name"]
            params["tool_choice"] = {"type": "tool", "name": json_tool}
    if tools:
        params["tools"] = tools
        if request.tool_choice is not None and json_tool is None:
            params["tool_choice"] = _tool_choice(request.tool_choice)
    extra = {k: v for k, v in request.extra.items() if k not in PASSTHROUGH_EXCLUDED}
    if extra:
        params["extra_body"] = extra
    headers = request.extra.get("extra_headers")
    if isinstance(headers, Mapping) and headers:
        params["extra_headers"] = dict(headers)
    return params, json_tool


def _input_tokens(usage: Any) -> int:
    total = 0
    for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        total += int(getattr(usage, name, 0) or 0)
    return total


def _cache_tokens(usage: Any) -> tuple[int, int]:
    """Input tokens read from and written to the prompt cache."""
    return (
        int(getattr(usage, "cache_read_input_tokens", 0) or 0),
        int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
    )


def to_usage(usage: Any) -> Usage | None:
    """Our `Usage` from an SDK usage object; cache reads and writes count as input."""
    if usage is None:
        return None
    return Usage(
        _input_tokens(usage), int(getattr(usage, "output_tokens", 0) or 0), *_cache_tokens(usage)
    )


def parse_message(message: Any, provider: str, json_tool: str | None) -> ChatResponse:
    """Our `ChatResponse` from an SDK ``Message``.

    Raises:
        ProviderError: The answer is empty (see `check_answer`).
    """
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[ReasoningPart] = []
    for block in message.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "thinking":
            reasoning.append(ReasoningPart(block.thinking, block.signature, None, provider))
        elif kind == "redacted_thinking":
            reasoning.append(ReasoningPart("", None, block.data, provider))
        elif kind == "tool_use":
            arguments = json.dumps(block.input, ensure_ascii=False)
            if block.name == json_tool:
                texts.append(arguments)
            else:
                calls.append(ToolCall(block.id, block.name, arguments))
    text = "".join(texts)
    reason = finish_reason(message.stop_reason, json_tool=json_tool)
    check_answer(bool(text), bool(calls), reason, provider)
    return ChatResponse(
        text=text,
        tool_calls=tuple(calls),
        finish_reason=reason,
        usage=to_usage(message.usage),
        provider=provider,
        provider_model=getattr(message, "model", None),
        response_id=getattr(message, "id", None) or None,
        reasoning=tuple(reasoning),
    )


class StreamState:
    """Folds raw Messages stream events into chunks; checks the stream really finished.

    Tool-use blocks go through a `ToolCallAssembler` keyed by block index, so the chunks
    number calls 0, 1, ... in the order they started.
    """

    __slots__ = (
        "_calls",
        "_json_blocks",
        "_reasoning",
        "cache_tokens",
        "has_text",
        "id",
        "input_tokens",
        "json_tool",
        "model",
        "output_tokens",
        "provider",
        "stop_reason",
        "stopped",
    )

    def __init__(self, json_tool: str | None, provider: str = "anthropic") -> None:
        self.json_tool = json_tool
        self.provider = provider
        self._json_blocks: set[int] = set()
        self._calls = ToolCallAssembler()
        # Reasoning blocks by index: [thinking text pieces, signature, redacted data].
        self._reasoning: dict[int, list[Any]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_tokens = (0, 0)
        self.stop_reason: str | None = None
        self.stopped = False
        self.has_text = False
        self.model: str | None = None
        self.id: str | None = None

    def feed(self, event: Any) -> StreamChunk | None:
        """The chunk an event carries, or None (bookkeeping events, empty deltas)."""
        kind = event.type
        if kind == "content_block_delta":
            # The hot path (one event per token), kept inline.
            delta = event.delta
            kind = getattr(delta, "type", None)
            if kind == "text_delta":
                text = delta.text
                if not text:
                    return None
                self.has_text = True
                return StreamChunk(text)
            if kind != "input_json_delta":
                return self._reasoning_delta(event.index, delta, kind)
            if not delta.partial_json:
                return None
            index = event.index
            if index in self._json_blocks:
                return self._text(delta.partial_json)
            slot = self._calls.slot_of(index)
            if slot is None:
                return None
            return StreamChunk("", (ToolCallDelta(slot, None, None, delta.partial_json),))
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "message_start":
            model = getattr(event.message, "model", None)
            self.model = model if isinstance(model, str) and model else None
            message_id = getattr(event.message, "id", None)
            self.id = message_id if isinstance(message_id, str) and message_id else None
            usage = event.message.usage
            self.input_tokens = _input_tokens(usage)
            self.output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
            self.cache_tokens = _cache_tokens(usage)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            usage = event.usage
            if usage is not None:
                self.output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
                if getattr(usage, "input_tokens", None):
                    self.input_tokens = _input_tokens(usage)
                    self.cache_tokens = _cache_tokens(usage)
        elif kind == "message_stop":
            self.stopped = True
        return None

    def _reasoning_delta(self, index: int, delta: Any, kind: str | None) -> StreamChunk | None:
        block = self._reasoning.get(index)
        if block is None:
            return None
        if kind == "thinking_delta":
            text = delta.thinking
            if not text:
                return None
            block[0].append(text)
            return StreamChunk(reasoning=text)
        if kind == "signature_delta":
            block[1] = (block[1] or "") + delta.signature
        return None

    def _reasoning_parts(self) -> tuple[ReasoningPart, ...]:
        parts = []
        for index in sorted(self._reasoning):
            pieces, signature, data = self._reasoning[index]
            parts.append(ReasoningPart("".join(pieces), signature, data, self.provider))
        return tuple(parts)

    def _text(self, text: str) -> StreamChunk | None:
        if not text:
            return None
        self.has_text = True
        return StreamChunk(text=text)

    def _start(self, index: int, block: Any) -> StreamChunk | None:
        kind = getattr(block, "type", None)
        if kind == "text":
            return self._text(block.text)
        if kind == "thinking":
            text = block.thinking or ""
            self._reasoning[index] = [[text] if text else [], block.signature or None, None]
            return StreamChunk(reasoning=text) if text else None
        if kind == "redacted_thinking":
            self._reasoning[index] = [[], None, block.data]
            return None
        if kind != "tool_use":
            return None
        if block.name == self.json_tool:
            self._json_blocks.add(index)
            return None
        slot = self._calls.add(index, block.id, block.name, None)
        return StreamChunk(tool_call_deltas=(ToolCallDelta(slot, block.id, block.name, ""),))

    def closing_chunk(self) -> StreamChunk:
        """The last chunk, with finish reason and usage.

        Raises:
            ProviderConnectionError: The stream ended with neither ``message_stop`` nor a
                recognised ``stop_reason`` (cut off).
            ProviderError: The finished answer is empty (see `check_answer`).
        """
        if not self.stopped and self.stop_reason not in _FINISH:
            raise ProviderConnectionError(
                "the response stream ended before message_stop or a recognised stop_reason"
            )
        reason = finish_reason(self.stop_reason, json_tool=self.json_tool)
        check_answer(self.has_text, bool(self._calls), reason, self.provider)
        return StreamChunk(
            finish_reason=reason,
            usage=Usage(self.input_tokens, self.output_tokens, *self.cache_tokens),
            provider_model=self.model,
            response_id=self.id,
            reasoning_parts=self._reasoning_parts() if self._reasoning else (),
        )
