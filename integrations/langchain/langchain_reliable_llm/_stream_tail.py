"""Turning the manager's stream into LangChain chunks, closed by one metadata chunk."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_reliable_llm._convert import (
    response_metadata,
    to_ai_message_chunk,
    usage_metadata,
)
from reliable_llm import StreamChunk, Usage

__all__ = ["StreamTail"]


class StreamTail:
    """Follows a stream: yields text and tool-call pieces, then one final metadata chunk."""

    __slots__ = ("cached", "finish_reason", "model", "route", "usage")

    def __init__(self, route: list[str]) -> None:
        self.route = route
        self.model = ""
        self.cached = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def add(self, chunk: StreamChunk) -> ChatGenerationChunk | None:
        self.model = chunk.model or self.model
        self.cached = self.cached or chunk.cached
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.text and not chunk.tool_call_deltas:
            return None
        return ChatGenerationChunk(message=to_ai_message_chunk(chunk))

    def last(self) -> ChatGenerationChunk:
        """The closing chunk: usage, finish reason and which model answered.

        Attempts are not listed: the manager's stream does not report them.
        """
        metadata = response_metadata(
            model=self.model,
            provider="",
            provider_model=None,
            finish_reason=self.finish_reason or "stop",
            cached=self.cached,
            route=self.route,
            attempts=None,
        )
        del metadata["provider"]
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_metadata(self.usage),
            response_metadata=metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": metadata["finish_reason"]}
        )
