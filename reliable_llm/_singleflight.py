"""Identical requests in flight at the same time share one upstream call."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Runs one call per key at a time; concurrent callers with the same key share its outcome.

    ``do`` returns ``(result, shared)``: ``shared`` is True for callers that waited on another's
    call. A leader cancelled mid-call does not fail its followers: they run the call themselves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}
        self._acalls: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[T]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run ``fn`` unless an identical call is in flight; then wait for that one."""
        while True:
            with self._lock:
                call = self._calls.get(key)
                leader = call is None
                if call is None:
                    call = self._calls[key] = _Call()
            if leader:
                break
            call.done.wait()
            if call.error is not None:
                raise call.error
            if call.done.is_set() and call.result is not None:
                return call.result, True
        try:
            call.result = fn()
            return call.result, False
        except Exception as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    async def ado(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Async twin of `do`, per event loop."""
        import asyncio  # deferred: keeps `import reliable_llm` fast

        loop = asyncio.get_running_loop()
        slot = (loop, key)
        while True:
            future = self._acalls.get(slot)
            if future is None:
                break
            try:
                return await asyncio.shield(future), True
            except asyncio.CancelledError:
                if not future.cancelled():
                    raise
        future = self._acalls[slot] = loop.create_future()
        try:
            result = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Followers observe the exception; mark it retrieved for the leader-only case.
            future.exception()
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._acalls[slot]
