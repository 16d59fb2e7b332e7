"""Turning reliable-llm stream chunks into the cumulative responses LlamaIndex streams."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.llms.reliable._convert import to_li_message

from reliable_llm import Message, StreamAccumulator, StreamChunk

__all__ = ["StreamTranslator"]


class StreamTranslator:
    """Folds chunks into LlamaIndex responses: ``message.content`` cumulative, ``delta`` new.

    Tool calls travel as `ToolCallBlock`s on every response once they start, with the
    arguments received so far; the last response holds them complete, which is what
    LlamaIndex agents read.
    """

    __slots__ = ("_acc", "_has_calls", "_text")

    def __init__(self) -> None:
        self._acc = StreamAccumulator()
        self._text = ""
        self._has_calls = False

    @staticmethod
    def _info(chunk: StreamChunk) -> dict[str, Any]:
        info: dict[str, Any] = {"model": chunk.model, "cached": chunk.cached}
        if chunk.finish_reason is not None:
            info["finish_reason"] = chunk.finish_reason
        if chunk.usage is not None:
            info["prompt_tokens"] = chunk.usage.input_tokens
            info["completion_tokens"] = chunk.usage.output_tokens
            info["total_tokens"] = chunk.usage.total_tokens
        return info

    def chat(self, chunk: StreamChunk) -> LIChatResponse:
        """The cumulative chat response after ``chunk``."""
        self._acc.add(chunk)
        self._text += chunk.text
        self._has_calls = self._has_calls or bool(chunk.tool_call_deltas)
        calls = self._acc.response().tool_calls if self._has_calls else ()
        message = to_li_message(Message("assistant", self._text, calls))
        return LIChatResponse(
            message=message,
            delta=chunk.text,
            raw={"text": chunk.text, "model": chunk.model, "finish_reason": chunk.finish_reason},
            additional_kwargs=self._info(chunk),
        )

    def completion(self, chunk: StreamChunk) -> CompletionResponse:
        """The cumulative completion response after ``chunk``."""
        self._acc.add(chunk)
        self._text += chunk.text
        return CompletionResponse(
            text=self._text,
            delta=chunk.text,
            raw={"text": chunk.text, "model": chunk.model, "finish_reason": chunk.finish_reason},
            additional_kwargs=self._info(chunk),
        )
