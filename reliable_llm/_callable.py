"""Seed-style models: a plain ``fn(prompt, **kwargs) -> str`` callable, sync or async."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

from reliable_llm._deadline import in_worker, within
from reliable_llm._errors import ConfigurationError, ProviderUnavailableError
from reliable_llm._provider import Provider
from reliable_llm._request import request_params
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


def _accepted(fn: object) -> frozenset[str] | None:
    """The keyword parameters ``fn`` takes besides the prompt (None: any, via ``**kwargs``).

    Raises:
        ConfigurationError: ``fn`` cannot be called with one positional prompt.
    """
    import inspect  # deferred: keeps `import reliable_llm` fast

    try:
        signature = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # a builtin without a signature: nothing to check
    try:
        signature.bind("prompt")
    except TypeError as exc:
        raise ConfigurationError(
            f"model callable {_name(fn)} must accept the prompt as its one positional "
            f"argument, fn(prompt, **kwargs); its signature is {signature} ({exc})"
        ) from None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            names.append(parameter.name)
    return frozenset(names[1:])


def _name(fn: object) -> str:
    return repr(getattr(fn, "__qualname__", type(fn).__qualname__))


class CallableProvider(Provider):
    """Serves a seed-style callable: ``fn(prompt, **kwargs)`` returning ``str``.

    The callable receives the conversation as one prompt (see `ChatRequest.prompt`) and every
    generation parameter the caller set, as keyword arguments. It may also return a
    `ChatResponse` to report tool calls or usage. Async callables are awaited natively by
    ``agenerate``; sync callables run in a worker thread there, so the event loop never blocks.

    The signature is checked once, here: a request with a parameter the callable cannot take
    raises `ConfigurationError` before the call (no retry, no fallback, no breaker count).

    A sync callable called from sync code runs in a worker thread, so the per-attempt timeout
    bounds it; pass ``enforces_timeout=True`` for a function that always returns quickly (or
    bounds itself) to call it in the caller's thread instead, saving the hand-off.

    Raises:
        ConfigurationError: ``fn`` cannot take the prompt as its one positional argument.
    """

    provider_name = "callable"

    def __init__(
        self,
        fn: Callable[..., str | ChatResponse | Awaitable[str | ChatResponse]],
        *,
        enforces_timeout: bool = False,
    ):
        self.fn = fn
        self.is_async = is_async_callable(fn)
        self.accepts = _accepted(fn)
        # An async callable is awaited under our timeout even from sync code (on the
        # background loop); a sync one can only be bounded from another thread, which costs
        # a thread hand-off (about 25 µs) per call unless the function vouches for itself.
        self.enforces_timeout = self.is_async or enforces_timeout

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs = request_params(request)
        if kwargs and self.accepts is not None:
            self._check(kwargs)
        return kwargs

    def _check(self, kwargs: dict[str, Any]) -> None:
        accepts = self.accepts
        refused = sorted(k for k in kwargs if accepts is not None and k not in accepts)
        if refused:
            raise ConfigurationError(
                f"model callable {_name(self.fn)} does not accept {refused}; add them (or "
                "**kwargs) to its signature, or leave them out of the request"
            )

    def check_request(self, request: ChatRequest) -> None:
        """Raise `ConfigurationError` now if a call with ``request`` could not be made.

        The manager checks every model of a request's route before the first attempt, so a
        fallback that cannot take a parameter is found at once, not during an outage.
        """
        if self.accepts is not None:
            kwargs = request_params(request)
            if kwargs:
                self._check(kwargs)

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
        """Call the function (an async one runs on a background event loop, within
        ``timeout``)."""
        kwargs = self._kwargs(request)
        if self.is_async:
            return self._convert(_LoopThread.run(self._bounded(request, kwargs, timeout)))
        return self._convert(self.fn(request.prompt, **kwargs))

    async def _bounded(
        self, request: ChatRequest, kwargs: dict[str, Any], timeout: float | None
    ) -> object:
        awaitable = self.fn(request.prompt, **kwargs)
        if timeout is None:
            return await awaitable  # type: ignore[misc]
        return await within(awaitable, timeout)  # type: ignore[arg-type]

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Await the function (a sync one runs in a worker thread).

        The manager bounds this call with ``timeout``; a sync function still running then is
        abandoned in its thread and its answer discarded.
        """
        kwargs = self._kwargs(request)
        if self.is_async:
            return self._convert(await self.fn(request.prompt, **kwargs))  # type: ignore[misc]
        fn = self.fn
        prompt = request.prompt
        value = await in_worker(lambda: fn(prompt, **kwargs))
        return self._convert(value)

    def describe(self) -> dict[str, object]:
        """Provider name and the callable's qualified name."""
        name = getattr(self.fn, "__qualname__", type(self.fn).__qualname__)
        return {"provider": self.provider_name, "callable": name}

    def __repr__(self) -> str:
        return f"CallableProvider({getattr(self.fn, '__qualname__', self.fn)!r})"
