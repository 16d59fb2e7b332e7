"""One way to call every driver (sync, async, stream, astream) and compare what callers get."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from reliable_llm import ChatResponse, LLMManager, StreamAccumulator

Ask = Callable[..., ChatResponse]


def _stream(manager: LLMManager, messages: Any, **kwargs: Any) -> ChatResponse:
    acc = StreamAccumulator()
    model = ""
    cached = False
    for chunk in manager.stream(messages, **kwargs):
        acc.add(chunk)
        model, cached = chunk.model, chunk.cached
    response = acc.response(model=model)
    return ChatResponse(
        response.text,
        response.tool_calls,
        response.finish_reason,
        response.usage,
        model,
        cached=cached,
    )


async def _astream(manager: LLMManager, messages: Any, **kwargs: Any) -> ChatResponse:
    acc = StreamAccumulator()
    model = ""
    cached = False
    async for chunk in manager.astream(messages, **kwargs):
        acc.add(chunk)
        model, cached = chunk.model, chunk.cached
    response = acc.response(model=model)
    return ChatResponse(
        response.text,
        response.tool_calls,
        response.finish_reason,
        response.usage,
        model,
        cached=cached,
    )


DRIVERS = ["sync", "async", "stream", "astream"]


def ask_with(driver: str, manager: LLMManager, messages: Any, **kwargs: Any) -> ChatResponse:
    """Make one request through ``driver`` and return what the caller ends up with."""
    if driver == "sync":
        return manager.chat(messages, **kwargs)
    if driver == "async":
        return asyncio.run(manager.achat(messages, **kwargs))
    if driver == "stream":
        return _stream(manager, messages, **kwargs)
    return asyncio.run(_astream(manager, messages, **kwargs))
