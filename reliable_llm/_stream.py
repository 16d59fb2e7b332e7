"""Turning streams into responses and responses into streams."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from reliable_llm._types import ChatResponse, StreamChunk, ToolCall, ToolCallDelta, Usage

__all__ = ["StreamAccumulator", "response_to_chunks"]


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


def response_to_chunks(response: ChatResponse, *, cached: bool = False) -> Iterator[StreamChunk]:
    """Replay a complete response as a stream of one chunk."""
    deltas = tuple(
        ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(response.tool_calls)
    )
    yield StreamChunk(
        text=response.text,
        tool_call_deltas=deltas,
        finish_reason=response.finish_reason,
        usage=response.usage,
        model=response.model,
        cached=cached,
        provider_model=response.provider_model,
    )
