"""Seed-style models: a plain ``fn(prompt, **kwargs) -> str`` callable, sync or async."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

from reliable_llm._errors import ProviderUnavailableError
from reliable_llm._provider import Provider
from reliable_llm._types import ChatRequest, ChatResponse

__all__ = ["CallableProvider", "is_async_callable"]

T = TypeVar("T")


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns an awaitable (async functions and async ``__call__``)."""
    import inspect  # deferred: keeps `import reliable_llm` fast

    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - we need the method itself
    )


class _LoopThread:
    """One background event loop that runs async models for sync callers."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T]) -> T:
        import asyncio

        loop = cls._loop
        if loop is None:
            with cls._lock:
                if cls._loop is None:
                    cls._loop = asyncio.new_event_loop()
                    thread = threading.Thread(
                        target=cls._loop.run_forever, name="reliable-llm-async", daemon=True
                    )
                    thread.start()
                loop = cls._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _request_kwargs(request: ChatRequest) -> dict[str, Any]:
    # Attribute reads, not a getattr loop: this runs on every call of a plain callable.
    kwargs: dict[str, Any] = {}
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        kwargs["max_tokens"] = request.max_tokens
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.stop is not None:
        kwargs["stop"] = list(request.stop)
    if request.tools:
        kwargs["tools"] = list(request.tools)
    if request.tool_choice is not None:
        kwargs["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format
    if request.extra:
        kwargs.update(request.extra)
    return kwargs


async def _within(awaitable: Awaitable[T], timeout: float) -> T:
    """Await with a deadline, raising TimeoutError when it passes.

    The same semantics as ``asyncio.timeout`` (an outside cancellation stays a cancellation)
    at about half its cost: one timer handle, no context-manager state machine.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = loop.call_at(loop.time() + timeout, expire)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise TimeoutError(f"model call exceeded its {timeout:.3g}s timeout") from None
        raise
    finally:
        handle.cancel()


class CallableProvider(Provider):
    """Serves a seed-style callable: ``fn(prompt, **kwargs)`` returning ``str``.

    The callable receives the conversation as one prompt (see `ChatRequest.prompt`) and every
    generation parameter the caller set, as keyword arguments. It may also return a
    `ChatResponse` to report tool calls or usage. Async callables are awaited natively by
    ``agenerate``; sync callables run in a worker thread there, so the event loop never blocks.
    """

    provider_name = "callable"

    def __init__(self, fn: Callable[..., str | ChatResponse | Awaitable[str | ChatResponse]]):
        self.fn = fn
        self.is_async = is_async_callable(fn)

    def _convert(self, value: object) -> ChatResponse:
        if isinstance(value, str):
            return ChatResponse(text=value, provider="callable")
        if isinstance(value, ChatResponse):
            return value
        raise ProviderUnavailableError(
            f"model callable {getattr(self.fn, '__name__', self.fn)!r} returned "
            f"{type(value).__name__}; it must return str or ChatResponse"
        )

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Call the function (an async one runs on a background event loop)."""
        if self.is_async:
            return self._convert(_LoopThread.run(self._acall(request, timeout)))
        return self._convert(self.fn(request.prompt, **_request_kwargs(request)))

    async def _acall(self, request: ChatRequest, timeout: float | None) -> object:
        awaitable = self.fn(request.prompt, **_request_kwargs(request))
        if timeout is None:
            return await awaitable  # type: ignore[misc]
        return await _within(awaitable, timeout)  # type: ignore[arg-type]

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Await the function (a sync one runs in a worker thread)."""
        import asyncio

        if self.is_async:
            return self._convert(await self._acall(request, timeout))
        value = await asyncio.to_thread(self.fn, request.prompt, **_request_kwargs(request))
        return self._convert(value)

    def describe(self) -> dict[str, object]:
        """Provider name and the callable's qualified name."""
        name = getattr(self.fn, "__qualname__", type(self.fn).__qualname__)
        return {"provider": self.provider_name, "callable": name}

    def __repr__(self) -> str:
        return f"CallableProvider({getattr(self.fn, '__qualname__', self.fn)!r})"
