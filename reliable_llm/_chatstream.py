"""The objects `LLMManager.stream` and `LLMManager.astream` return."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType

from reliable_llm._engine import StreamState
from reliable_llm._types import ChatResponse, StreamChunk

__all__ = ["AsyncChatStream", "ChatStream"]


class ChatStream:
    """A streamed answer: iterate it for `StreamChunk` objects.

    Once the stream is exhausted, ``response`` is the whole `ChatResponse` (text, tool calls,
    usage, the model that answered, ``attempts`` and ``fallback_from``), the same object the
    non-streaming call would have returned; before that it is None. Closing the stream (or
    leaving a ``with`` block, or breaking out and dropping it) abandons the answer: the
    upstream connection is closed and the request is counted as cancelled.

    Example:
        >>> from reliable_llm import LLMManager
        >>> manager = LLMManager()
        >>> manager.register_model("echo", lambda prompt, **kw: prompt.upper())
        >>> stream = manager.stream("hi")
        >>> "".join(chunk.text for chunk in stream), stream.response.model
        ('HI', 'echo')
    """

    __slots__ = ("_chunks", "_state")

    def __init__(self, open_chunks: Callable[[StreamState], Iterator[StreamChunk]]) -> None:
        self._state = StreamState()
        self._chunks = open_chunks(self._state)

    @property
    def response(self) -> ChatResponse | None:
        """The complete answer, once the stream is exhausted (None before)."""
        return self._state.response

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamChunk:
        return next(self._chunks)

    def close(self) -> None:
        """Abandon the stream (a no-op once it is exhausted)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        done = "complete" if self._state.response is not None else "open"
        return f"<ChatStream {done}>"


class AsyncChatStream:
    """Async twin of `ChatStream`: ``async for chunk in stream``, then ``stream.response``.

    ``await stream.aclose()`` (or ``async with``) abandons it; so does cancelling the task
    that iterates it.
    """

    __slots__ = ("_chunks", "_state")

    def __init__(self, open_chunks: Callable[[StreamState], AsyncIterator[StreamChunk]]) -> None:
        self._state = StreamState()
        self._chunks = open_chunks(self._state)

    @property
    def response(self) -> ChatResponse | None:
        """The complete answer, once the stream is exhausted (None before)."""
        return self._state.response

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> StreamChunk:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        """Abandon the stream (a no-op once it is exhausted)."""
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        done = "complete" if self._state.response is not None else "open"
        return f"<AsyncChatStream {done}>"
