"""Turning reliable-llm stream chunks into the cumulative responses LlamaIndex streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.llms.reliable._convert import reliability_info, to_li_message

from reliable_llm import LLMManager, Message, StreamAccumulator, StreamChunk

__all__ = ["StreamTranslator"]


class StreamTranslator:
    """Folds chunks into LlamaIndex responses: ``message.content`` cumulative, ``delta`` new.

    Tool calls travel as `ToolCallBlock`s on every response once they start, with the
    arguments received so far; the last response holds them complete, which is what
    LlamaIndex agents read. The last response's ``additional_kwargs`` carry the keys a
    non-streamed response has (see `reliability_info`); ``attempts`` is not known yet for
    streams, whose chunks do not carry it.
    """

    __slots__ = ("_acc", "_has_calls", "_manager", "_route", "_text")

    def __init__(self, manager: LLMManager, route: Sequence[str]) -> None:
        self._acc = StreamAccumulator()
        self._text = ""
        self._has_calls = False
        self._manager = manager
        self._route = route

    def _info(self, chunk: StreamChunk) -> dict[str, Any]:
        if chunk.finish_reason is None:
            return {"model": chunk.model, "cached": chunk.cached}
        acc = self._acc
        route = self._route
        # The core's view: a cache hit gave up no model; otherwise those before the answerer.
        given_up = () if chunk.cached or chunk.model not in route else route
        try:
            provider = self._manager.describe_model(chunk.model)["provider"].get("provider", "")
        except KeyError:
            provider = ""
        return reliability_info(
            model=chunk.model,
            provider=str(provider),
            provider_model=acc.provider_model,
            finish_reason=chunk.finish_reason,
            cached=chunk.cached,
            fallback_from=given_up[: given_up.index(chunk.model)] if given_up else (),
            usage=acc.usage,
        )

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
