"""One way to call every driver (sync, async, stream, astream) and compare what callers get."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from reliable_llm import ChatResponse, LLMManager

Ask = Callable[..., ChatResponse]


def _stream(manager: LLMManager, messages: Any, **kwargs: Any) -> ChatResponse:
    stream = manager.stream(messages, **kwargs)
    for _chunk in stream:
        pass
    assert stream.response is not None, "an exhausted stream carries its response"
    return stream.response


async def _astream(manager: LLMManager, messages: Any, **kwargs: Any) -> ChatResponse:
    stream = manager.astream(messages, **kwargs)
    async for _chunk in stream:
        pass
    assert stream.response is not None, "an exhausted stream carries its response"
    return stream.response


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
