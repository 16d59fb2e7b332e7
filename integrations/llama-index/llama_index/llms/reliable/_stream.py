"""Turning reliable-llm stream chunks into the cumulative responses LlamaIndex streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatMessage, CompletionResponse
from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.llms.reliable._convert import to_li_message
from llama_index.llms.reliable._metadata import response_info

from reliable_llm import (
    AsyncChatStream,
    ChatResponse,
    ChatStream,
    Message,
    Part,
    ReasoningPart,
    StreamAccumulator,
    StreamChunk,
    TextPart,
    ToolCall,
)

__all__ = ["StreamTranslator", "atranslate", "translate"]

T = TypeVar("T")
Fold = Callable[[StreamChunk, ChatResponse | None], T]


class StreamTranslator:
    """Folds chunks into LlamaIndex responses: ``message.content`` cumulative, ``delta`` new.

    Reasoning travels as `ThinkingBlock`s ahead of the text: the text streamed so far, then,
    once a block ends, the provider's whole block (with its signature).
    Tool calls travel as `ToolCallBlock`s on every response once they start, with the
    arguments received so far; the last response holds them complete, which is what
    LlamaIndex agents read. The last response's ``additional_kwargs`` are those of a
    non-streamed response (`response_info` of the stream's whole `ChatResponse`, attempts
    included); `translate` holds back only the chunk that carries the finish reason until the
    stream is exhausted and its response is known, which follows at once.
    """

    __slots__ = ("_acc", "_has_calls", "_reasoning", "_text", "_thinking")

    def __init__(self) -> None:
        self._acc = StreamAccumulator()
        self._text = ""
        self._has_calls = False
        self._reasoning: list[ReasoningPart] = []  # finished reasoning blocks
        self._thinking = ""  # reasoning text of the block still streaming

    def _message(self, chunk: StreamChunk, calls: tuple[ToolCall, ...]) -> ChatMessage:
        """The cumulative message: reasoning so far as `ThinkingBlock`s, then text, calls."""
        if chunk.reasoning:
            self._thinking += chunk.reasoning
        if chunk.reasoning_parts:
            self._reasoning.extend(chunk.reasoning_parts)
            self._thinking = ""
        if not self._reasoning and not self._thinking:
            return to_li_message(Message("assistant", self._text, calls))
        parts: list[Part] = list(self._reasoning)
        if self._thinking:
            parts.append(ReasoningPart(self._thinking))
        if self._text:
            parts.append(TextPart(self._text))
        return to_li_message(Message("assistant", tuple(parts), calls))

    def _info(self, chunk: StreamChunk, response: ChatResponse | None) -> dict[str, Any]:
        if response is None:
            return {"model": chunk.model, "cached": chunk.cached}
        return response_info(response)

    def chat(self, chunk: StreamChunk, response: ChatResponse | None = None) -> LIChatResponse:
        """The cumulative chat response after ``chunk`` (the last one gets ``response``)."""
        self._acc.add(chunk)
        self._text += chunk.text
        self._has_calls = self._has_calls or bool(chunk.tool_call_deltas)
        calls = self._acc.response().tool_calls if self._has_calls else ()
        message = self._message(chunk, calls)
        return LIChatResponse(
            message=message,
            delta=chunk.text,
            raw={"text": chunk.text, "model": chunk.model, "finish_reason": chunk.finish_reason},
            additional_kwargs=self._info(chunk, response),
        )

    def completion(
        self, chunk: StreamChunk, response: ChatResponse | None = None
    ) -> CompletionResponse:
        """The cumulative completion response after ``chunk`` (the last one gets ``response``)."""
        self._acc.add(chunk)
        self._text += chunk.text
        return CompletionResponse(
            text=self._text,
            delta=chunk.text,
            raw={"text": chunk.text, "model": chunk.model, "finish_reason": chunk.finish_reason},
            additional_kwargs=self._info(chunk, response),
        )


def translate(stream: ChatStream, fold: Fold[T]) -> Generator[T, None, None]:
    """``fold`` applied to each chunk of ``stream``; the finishing chunk gets the response."""
    held: StreamChunk | None = None
    for chunk in stream:
        if held is not None:
            yield fold(held, None)
            held = None
        if chunk.finish_reason is None:
            yield fold(chunk, None)
        else:
            held = chunk
    if held is not None:
        yield fold(held, stream.response)


async def atranslate(stream: AsyncChatStream, fold: Fold[T]) -> AsyncGenerator[T, None]:
    """Async twin of `translate`."""
    held: StreamChunk | None = None
    async for chunk in stream:
        if held is not None:
            yield fold(held, None)
            held = None
        if chunk.finish_reason is None:
            yield fold(chunk, None)
        else:
            held = chunk
    if held is not None:
        yield fold(held, stream.response)
