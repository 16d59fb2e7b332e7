"""The stream decoders as they were before the wire work (commit 59a0394), frozen as a baseline.

`bench_providers` times today's per-chunk decode path against these in the same run, so the
"within 10%" comparison does not depend on machine noise between runs. Verbatim copies,
renamed apart; nothing else uses them.
"""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reliable_llm._errors import ProviderConnectionError
from reliable_llm._types import ChatResponse, StreamChunk, ToolCall, ToolCallDelta, Usage

_OPENAI_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def openai_finish_reason(value: str | None) -> str:
    """An OpenAI finish reason normalized to stop / length / tool_calls / content_filter."""
    return _OPENAI_FINISH.get(value or "stop", "stop")


def openai_to_usage(usage: Any) -> Usage | None:
    """Our `Usage` from an SDK usage object (None when the provider sent none)."""
    if usage is None:
        return None
    return Usage(
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
    )


def chunk_parts(chunk: Any) -> tuple[StreamChunk | None, str | None, Usage | None]:
    """Split an SDK ``ChatCompletionChunk`` into (content, finish reason, usage).

    The content chunk is None when the delta carries nothing a caller can see (role-only
    and empty deltas), so no empty chunk is ever yielded. The finish reason is the raw
    value (None until the last choice delta).
    """
    usage = openai_to_usage(getattr(chunk, "usage", None))
    if not chunk.choices:
        return None, None, usage
    choice = chunk.choices[0]
    delta = choice.delta
    text = (delta.content or "") if delta is not None else ""
    deltas: tuple[ToolCallDelta, ...] = ()
    if delta is not None and delta.tool_calls:
        deltas = tuple(
            ToolCallDelta(
                index=call.index,
                id=call.id or None,
                name=(call.function.name or None) if call.function else None,
                arguments=(call.function.arguments or "") if call.function else "",
            )
            for call in delta.tool_calls
        )
    content = StreamChunk(text=text, tool_call_deltas=deltas) if text or deltas else None
    return content, choice.finish_reason, usage


class OpenAIStreamState:
    """Watches a chunk stream for its finish reason and usage; builds the closing chunk."""

    __slots__ = ("finish", "model", "usage")

    def __init__(self) -> None:
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: Any) -> StreamChunk | None:
        content, finish, usage = chunk_parts(chunk)
        if self.model is None:
            model = getattr(chunk, "model", None)
            self.model = model if isinstance(model, str) and model else None
        if finish is not None:
            self.finish = finish
        if usage is not None:
            self.usage = usage
        return content

    def closing_chunk(self) -> StreamChunk:
        """The last chunk, with finish reason and usage.

        Raises:
            ProviderConnectionError: The stream ended without a finish reason (cut off).
        """
        if self.finish is None:
            raise ProviderConnectionError("the response stream ended before the answer finished")
        return StreamChunk(
            finish_reason=openai_finish_reason(self.finish),
            usage=self.usage,
            provider_model=self.model,
        )


_ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def anthropic_finish_reason(stop_reason: str | None, *, json_tool: str | None = None) -> str:
    """An Anthropic stop reason normalized to stop / length / tool_calls / content_filter."""
    if stop_reason == "tool_use" and json_tool is not None:
        return "stop"
    return _ANTHROPIC_FINISH.get(stop_reason or "end_turn", "stop")


def _input_tokens(usage: Any) -> int:
    total = 0
    for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        total += int(getattr(usage, name, 0) or 0)
    return total


class AnthropicStreamState:
    """Folds raw Messages stream events into chunks; checks the stream really finished."""

    __slots__ = (
        "_json_blocks",
        "_tools",
        "input_tokens",
        "json_tool",
        "model",
        "output_tokens",
        "stop_reason",
        "stopped",
    )

    def __init__(self, json_tool: str | None) -> None:
        self.json_tool = json_tool
        self._json_blocks: set[int] = set()
        self._tools: dict[int, int] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stopped = False
        self.model: str | None = None

    def feed(self, event: Any) -> StreamChunk | None:
        """The chunk an event carries, or None (bookkeeping events, empty deltas)."""
        kind = event.type
        if kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "message_start":
            model = getattr(event.message, "model", None)
            self.model = model if isinstance(model, str) and model else None
            usage = event.message.usage
            self.input_tokens = _input_tokens(usage)
            self.output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            usage = event.usage
            if usage is not None:
                self.output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
                if getattr(usage, "input_tokens", None):
                    self.input_tokens = _input_tokens(usage)
        elif kind == "message_stop":
            self.stopped = True
        return None

    def _start(self, index: int, block: Any) -> StreamChunk | None:
        kind = getattr(block, "type", None)
        if kind == "text":
            return StreamChunk(text=block.text) if block.text else None
        if kind != "tool_use":
            return None
        if block.name == self.json_tool:
            self._json_blocks.add(index)
            return None
        position = self._tools[index] = len(self._tools)
        return StreamChunk(tool_call_deltas=(ToolCallDelta(position, block.id, block.name, ""),))

    def _delta(self, index: int, delta: Any) -> StreamChunk | None:
        kind = getattr(delta, "type", None)
        if kind == "text_delta":
            return StreamChunk(text=delta.text) if delta.text else None
        if kind != "input_json_delta" or not delta.partial_json:
            return None
        if index in self._json_blocks:
            return StreamChunk(text=delta.partial_json)
        position = self._tools.get(index)
        if position is None:
            return None
        return StreamChunk(
            tool_call_deltas=(ToolCallDelta(position, arguments=delta.partial_json),)
        )

    def closing_chunk(self) -> StreamChunk:
        """The last chunk, with finish reason and usage.

        Raises:
            ProviderConnectionError: The stream ended without ``message_stop`` (cut off).
        """
        if not self.stopped:
            raise ProviderConnectionError("the response stream ended before message_stop")
        return StreamChunk(
            finish_reason=anthropic_finish_reason(self.stop_reason, json_tool=self.json_tool),
            usage=Usage(self.input_tokens, self.output_tokens),
            provider_model=self.model,
        )


@dataclass(slots=True)
class _PartialToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAccumulator:
    """Collects stream chunks into the `ChatResponse` they add up to.

    Example:
        >>> acc = StreamAccumulator()
        >>> for chunk in (StreamChunk(text="Hel"), StreamChunk(text="lo", finish_reason="stop")):
        ...     acc.add(chunk)
        >>> acc.response().text
        'Hello'
    """

    __slots__ = ("_calls", "_parts", "finish_reason", "provider_model", "usage")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._calls: dict[int, _PartialToolCall] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.provider_model: str | None = None

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def add(self, chunk: StreamChunk) -> None:
        """Fold one chunk into the running answer."""
        if chunk.text:
            self._parts.append(chunk.text)
        for delta in chunk.tool_call_deltas:
            self._add_delta(delta)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.provider_model is not None:
            self.provider_model = chunk.provider_model

    def _add_delta(self, delta: ToolCallDelta) -> None:
        call = self._calls.get(delta.index)
        if call is None:
            call = self._calls[delta.index] = _PartialToolCall()
        if delta.id:
            call.id = delta.id
        if delta.name:
            call.name += delta.name
        if delta.arguments:
            call.arguments.append(delta.arguments)

    def response(self, *, model: str = "", provider: str = "") -> ChatResponse:
        """The response the chunks so far add up to."""
        calls = tuple(
            ToolCall(c.id, c.name, "".join(c.arguments) or "{}")
            for _, c in sorted(self._calls.items())
        )
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        return ChatResponse(
            text=self.text,
            tool_calls=calls,
            finish_reason=finish,
            usage=self.usage,
            model=model,
            provider=provider,
            provider_model=self.provider_model,
        )
