"""Turning streams into responses and responses into streams.

`ToolCallAssembler` is the one place that folds streamed tool-call fragments into calls: the
providers' stream decoders, `StreamAccumulator` and both framework adapters use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from reliable_llm._content import ReasoningPart
from reliable_llm._types import ChatResponse, StreamChunk, ToolCall, ToolCallDelta, Usage

__all__ = ["StreamAccumulator", "ToolCallAssembler", "response_to_chunks"]


@dataclass(slots=True)
class _PartialToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def _is_json_value(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ToolCallAssembler:
    """Folds streamed tool-call fragments into whole calls, whatever the server's habits.

    Servers differ in how they stream parallel tool calls; the rules that cover them all:

    - fragments with the same ``index`` (and no new id) belong to one call;
    - a new id at an index that already holds a call with another id starts a new call
      (servers that number every parallel call ``0``);
    - a fragment without an index continues the call its id names, else starts a new call
      in the next free slot (a bare arguments fragment continues the latest call);
    - a field repeated whole replaces rather than appends: a name equal to the one held,
      or complete JSON arguments arriving after complete JSON arguments;
    - arguments sent whole or in fragments both work.

    `add` returns the call's slot: calls are numbered 0, 1, ... in the order they started.
    A decoder that only needs the slots (the chunks it yields are assembled downstream)
    passes ``arguments=None``.
    """

    __slots__ = ("_by_id", "_by_index", "_calls", "_last", "slot_of")

    def __init__(self) -> None:
        self._calls: list[_PartialToolCall] = []
        self._by_index: dict[int, int] = {}
        self._by_id: dict[str, int] = {}
        self._last: int | None = None
        #: ``slot_of(index)``: the slot of the call now held at wire ``index``, or None. A
        #: bound ``dict.get``: decoders call it for every continuation fragment.
        self.slot_of: Callable[[int], int | None] = self._by_index.get

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(
        self, index: int | None, id: str | None, name: str | None, arguments: str | None
    ) -> int:
        """Fold one fragment in; return the slot of the call it belongs to."""
        slot = None if id or index is None else self._by_index.get(index)
        if slot is None:  # not the common case, a continuation fragment
            slot = self._slot(index, id or None)
        call = self._calls[slot]
        if id and not call.id:
            call.id = id
            self._by_id[id] = slot
        if name and name != call.name:
            call.name = name if not call.name else call.name + name
        if arguments:
            parts = call.arguments
            if parts and arguments[0] == "{" and parts[-1][-1:] == "}":
                held = "".join(parts)
                if _is_json_value(held) and _is_json_value(arguments):
                    parts.clear()  # a whole arguments object sent again
            parts.append(arguments)
        if slot != self._last:
            self._last = slot
        return slot

    def _slot(self, index: int | None, id: str | None) -> int:
        if id is not None and id in self._by_id:
            return self._by_id[id]
        if index is None:
            if id is None and self._last is not None:
                return self._last
            return self._new(None)
        slot = self._by_index.get(index)
        if slot is None:
            return self._new(index)
        if id is not None and self._calls[slot].id and self._calls[slot].id != id:
            return self._new(index)
        return slot

    def _new(self, index: int | None) -> int:
        slot = len(self._calls)
        self._calls.append(_PartialToolCall())
        if index is not None:
            self._by_index[index] = slot
        return slot

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls assembled so far, in the order they started."""
        return tuple(ToolCall(c.id, c.name, "".join(c.arguments) or "{}") for c in self._calls)


class StreamAccumulator:
    """Collects stream chunks into the `ChatResponse` they add up to.

    Example:
        >>> acc = StreamAccumulator()
        >>> for chunk in (StreamChunk(text="Hel"), StreamChunk(text="lo", finish_reason="stop")):
        ...     acc.add(chunk)
        >>> acc.response().text
        'Hello'
    """

    __slots__ = (
        "_calls",
        "_parts",
        "finish_reason",
        "provider_model",
        "reasoning",
        "response_id",
        "usage",
    )

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._calls = ToolCallAssembler()
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.provider_model: str | None = None
        self.response_id: str | None = None
        self.reasoning: tuple[ReasoningPart, ...] = ()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def add(self, chunk: StreamChunk) -> None:
        """Fold one chunk into the running answer."""
        if chunk.text:
            self._parts.append(chunk.text)
        if chunk.tool_call_deltas:
            add = self._calls.add
            for delta in chunk.tool_call_deltas:
                add(delta.index, delta.id, delta.name, delta.arguments)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            if chunk.response_id is not None:  # only the closing chunk carries it
                self.response_id = chunk.response_id
            if chunk.reasoning_parts:  # and the whole reasoning, as issued
                self.reasoning += chunk.reasoning_parts
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.provider_model is not None:
            self.provider_model = chunk.provider_model

    def response(self, *, model: str = "", provider: str = "") -> ChatResponse:
        """The response the chunks so far add up to."""
        calls = self._calls.calls()
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        return ChatResponse(
            text=self.text,
            tool_calls=calls,
            finish_reason=finish,
            usage=self.usage,
            model=model,
            provider=provider,
            provider_model=self.provider_model,
            response_id=self.response_id,
            reasoning=self.reasoning,
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
        response_id=response.response_id,
        reasoning="".join([part.text for part in response.reasoning]),
        reasoning_parts=response.reasoning,
    )
