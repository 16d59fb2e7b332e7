"""Turning a reliable-llm stream into the chunks LangChain streams.

Text, reasoning and tool-call chunks become `AIMessageChunk`s as they arrive (reasoning as
standard blocks that merge by index, see `ReasoningStream`); the last chunk carries
usage and the same ``response_metadata`` as a non-streamed answer, taken from the stream's
whole `ChatResponse` (`reliable_llm.ChatStream.response`), so ``invoke`` and ``stream``
report identical facts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_reliable_llm._content import ReasoningStream
from langchain_reliable_llm._convert import usage_metadata
from langchain_reliable_llm._errors import to_langchain_error
from langchain_reliable_llm._metadata import response_metadata
from reliable_llm import (
    AllModelsFailedError,
    AsyncChatStream,
    ChatResponse,
    ChatStream,
    StreamChunk,
    StreamInterruptedError,
    ToolCallDelta,
)

__all__ = ["atranslate", "closing_chunk", "to_ai_message_chunk", "translate"]


def _deltas(deltas: Sequence[ToolCallDelta]) -> list[Any]:
    return [
        tool_call_chunk(name=d.name, args=d.arguments or None, id=d.id, index=d.index)
        for d in deltas
    ]


def to_ai_message_chunk(
    chunk: StreamChunk, reasoning: ReasoningStream | None = None
) -> AIMessageChunk:
    """Convert a text, reasoning or tool-call stream chunk (no usage, no metadata) into
    LangChain's; ``reasoning`` is the stream's `ReasoningStream` (one per stream)."""
    content = chunk.text if reasoning is None else reasoning.content(chunk)
    return AIMessageChunk(content=content, tool_call_chunks=_deltas(chunk.tool_call_deltas))


def closing_chunk(response: ChatResponse) -> ChatGenerationChunk:
    """The last chunk of a stream: usage and the same metadata `to_ai_message` gives, taken
    from the stream's whole response (`reliable_llm.ChatStream.response`)."""
    message = AIMessageChunk(
        content="",
        usage_metadata=usage_metadata(response.usage),
        response_metadata=response_metadata(response),
        chunk_position="last",
    )
    return ChatGenerationChunk(
        message=message, generation_info={"finish_reason": response.finish_reason}
    )


def translate(stream: ChatStream) -> Iterator[ChatGenerationChunk]:
    """LangChain chunks for a manager stream, then its closing chunk.

    The manager's stream is closed however iteration ends (a consumer that stops early ends
    it now, not at garbage collection).

    Raises:
        ReliableChatModelError: No model started streaming.
        ReliableStreamInterruptedError: The stream broke after text was yielded.
    """
    reasoning = ReasoningStream()
    try:
        for chunk in stream:
            if chunk.text or chunk.tool_call_deltas or chunk.reasoning or chunk.reasoning_parts:
                yield ChatGenerationChunk(message=to_ai_message_chunk(chunk, reasoning))
    except (AllModelsFailedError, StreamInterruptedError) as exc:
        raise to_langchain_error(exc) from exc
    finally:
        stream.close()
    assert stream.response is not None  # an exhausted stream carries its response
    yield closing_chunk(stream.response)


async def atranslate(stream: AsyncChatStream) -> AsyncIterator[ChatGenerationChunk]:
    """Async twin of `translate`."""
    reasoning = ReasoningStream()
    try:
        async for chunk in stream:
            if chunk.text or chunk.tool_call_deltas or chunk.reasoning or chunk.reasoning_parts:
                yield ChatGenerationChunk(message=to_ai_message_chunk(chunk, reasoning))
    except (AllModelsFailedError, StreamInterruptedError) as exc:
        raise to_langchain_error(exc) from exc
    finally:
        await stream.aclose()
    assert stream.response is not None
    yield closing_chunk(stream.response)
