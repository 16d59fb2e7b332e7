"""Turning the manager's stream into LangChain chunks, closed by one metadata chunk.

The manager's stream chunks do not carry the request's attempts, so they are collected
from the manager's ``AttemptFinished`` events. The manager calls its hooks synchronously
while it serves a stream step, inside ``next()`` / ``anext()`` on its iterator; a context
variable set around exactly that call routes each event to the stream it belongs to, even
when several streams are consumed in one thread or across asyncio tasks.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_reliable_llm._convert import (
    response_metadata,
    to_ai_message_chunk,
    usage_metadata,
)
from reliable_llm import Attempt, LLMManager, StreamChunk, Usage

__all__ = ["StreamTail"]

_SINK: ContextVar[list[dict[str, Any]] | None] = ContextVar("reliable_llm_attempts", default=None)
_WATCHED: weakref.WeakSet[LLMManager] = weakref.WeakSet()


def _collect(event: object) -> None:
    sink = _SINK.get()
    if sink is not None and isinstance(event, Attempt):
        sink.append(
            {
                "model": event.model,
                "number": event.number,
                "duration": event.duration,
                "error": None if event.error is None else type(event.error).__name__,
                "message": None if event.error is None else str(event.error),
            }
        )


class StreamTail:
    """Follows one stream: pulls chunks, records attempts, closes with a metadata chunk."""

    __slots__ = (
        "attempts",
        "cached",
        "finish_reason",
        "manager",
        "model",
        "provider_model",
        "route",
        "usage",
    )

    def __init__(self, manager: LLMManager, route: list[str]) -> None:
        if manager not in _WATCHED:
            manager.add_hook(_collect)
            _WATCHED.add(manager)
        self.manager = manager
        self.route = route
        self.model = ""
        self.cached = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.provider_model: str | None = None
        self.attempts: list[dict[str, Any]] = []

    def pull(self, iterator: Iterator[StreamChunk]) -> StreamChunk | None:
        """The next chunk of ``iterator`` (None at its end), recording attempts made for it."""
        token = _SINK.set(self.attempts)
        try:
            return next(iterator, None)
        finally:
            _SINK.reset(token)

    async def apull(self, iterator: AsyncIterator[StreamChunk]) -> StreamChunk | None:
        """Async twin of `pull`."""
        token = _SINK.set(self.attempts)
        try:
            return await anext(iterator, None)
        finally:
            _SINK.reset(token)

    def add(self, chunk: StreamChunk) -> ChatGenerationChunk | None:
        """Fold ``chunk`` in; return its text or tool-call piece, if it has one."""
        self.model = chunk.model or self.model
        self.cached = self.cached or chunk.cached
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.provider_model is not None:
            self.provider_model = chunk.provider_model
        if not chunk.text and not chunk.tool_call_deltas:
            return None
        return ChatGenerationChunk(message=to_ai_message_chunk(chunk))

    @property
    def provider(self) -> str:
        """The provider name of the model that answered."""
        try:
            described = self.manager.describe_model(self.model)["provider"]
        except KeyError:
            return ""
        return str(described.get("provider", ""))

    def last(self) -> ChatGenerationChunk:
        """The closing chunk: usage, finish reason, which model answered and the attempts."""
        # The core's view: a cache hit gave up no model; otherwise those before the answerer.
        given_up = [] if self.cached or self.model not in self.route else self.route
        metadata = response_metadata(
            model=self.model,
            provider=self.provider,
            provider_model=self.provider_model,
            finish_reason=self.finish_reason or "stop",
            cached=self.cached,
            fallback_from=given_up[: given_up.index(self.model)] if given_up else [],
            attempts=self.attempts,
        )
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_metadata(self.usage),
            response_metadata=metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": metadata["finish_reason"]}
        )
