"""Wall-clock bounds around calls we cannot trust to end on time.

Async calls are bounded with the event loop's own timer (no thread, no extra task). Blocking
calls that do not enforce their own timeout run in a worker thread that the caller stops
waiting for when the time is up; the abandoned call runs on in that (daemon) thread until it
returns or fails, and its outcome is discarded. Worker threads are reused and exit when idle.

Hand-written rather than `concurrent.futures.ThreadPoolExecutor`: its threads are joined at
interpreter exit, so one hung model call would keep the process from exiting, and its
futures cost about twice as much per call as the lock hand-off below.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["ChunkPump", "call_with_timeout", "in_worker", "start_in_worker", "within"]

T = TypeVar("T")
_IDLE_EXIT = 30.0  # seconds an idle worker thread waits for work before it exits


def _timeout_error(timeout: float, what: str = "model call") -> TimeoutError:
    return TimeoutError(f"{what} exceeded its {timeout:.3g}s timeout")


async def within(awaitable: Awaitable[T], timeout: float, what: str = "model call") -> T:
    """Await with a deadline, raising TimeoutError when it passes.

    The same semantics as ``asyncio.timeout`` (an outside cancellation stays a cancellation)
    at about half its cost: one timer handle on the running loop, no context-manager state.
    """
    import asyncio  # deferred: keeps `import reliable_llm` fast

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
            raise _timeout_error(timeout, what) from None
        raise
    finally:
        handle.cancel()


class _Job:
    __slots__ = ("abandoned", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False  # its caller stopped waiting before it started: skip it

    def run(self) -> None:
        try:
            if not self.abandoned:
                self.result = self.fn()
        except BaseException as exc:  # handed to the waiting caller, who re-raises it
            self.error = exc
        finally:
            self.fn = None  # type: ignore[assignment]  # drop references early
            self.done.release()


class _Workers:
    """Daemon worker threads, started on demand (at most ``limit``) and stopped after
    ``_IDLE_EXIT`` idle seconds; beyond the limit, jobs wait for a free worker.

    ``_idle`` counts workers waiting for a job that no submitter has claimed yet; a submitter
    claims one (or starts a thread) under the lock, and puts the job under it too, so an
    idle worker that times out sees the job before it decides to exit.
    """

    def __init__(self, limit: int = 256) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self.limit = limit

    def submit(self, job: _Job) -> None:
        with self._lock:
            self._jobs.put(job)
            if self._idle:
                self._idle -= 1
                return
            if self._threads >= self.limit:
                return  # queued: the next worker to finish takes it
            self._threads += 1
        threading.Thread(target=self._work, name="reliable-llm-call", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty() and self._idle:
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue
            job.run()
            with self._lock:
                self._idle += 1


_workers = _Workers()


def call_with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn()`` in a worker thread; return its result or raise what it raised.

    The worker runs in a copy of the caller's context (so context variables, such as the
    single-flight re-entrance marker, carry over).

    Raises:
        TimeoutError: ``fn`` did not finish within ``timeout`` seconds; it keeps running in
            its thread and its outcome is discarded.
    """
    job = _Job(_in_context(fn))
    _workers.submit(job)
    if not job.done.acquire(timeout=timeout):
        job.abandoned = True
        raise _timeout_error(timeout)
    if job.error is not None:
        error, job.error = job.error, None
        raise error
    result: T = job.result
    return result


async def in_worker(fn: Callable[[], T]) -> T:
    """Await ``fn()`` run in one of our daemon worker threads (the event loop never blocks).

    Unlike ``asyncio.to_thread``, an abandoned call (its awaiter cancelled or timed out) does
    not hold up ``asyncio.run`` at exit, which joins the loop's default executor.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(job: _Job) -> None:
        if future.done():
            return  # abandoned by its awaiter
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)

    call = _in_context(fn)

    def run() -> None:
        job = _Job(call)
        job.abandoned = future.done()  # cancelled or timed out before a worker was free
        job.run()
        # A closed loop (RuntimeError) means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, job)

    _workers.submit(_Job(run))
    return await future


def start_in_worker(fn: Callable[[], object]) -> None:
    """Run ``fn()`` in one of our daemon worker threads, in a copy of the caller's context,
    without waiting for it (``fn`` reports its own outcome; what it raises is dropped)."""
    _workers.submit(_Job(_in_context(fn)))


def _in_context(fn: Callable[[], T]) -> Callable[[], T]:
    context = contextvars.copy_context()
    return lambda: context.run(fn)


_END = object()
_NEXT = object()
_CLOSE = object()
_CLOSE_WAIT = 1.0  # seconds close() waits for an idle worker to close the iterator


class ChunkPump(Generic[T]):
    """Reads a blocking iterator in a worker thread, so each wait for an item is bounded.

    Lock-step, like iterating directly: the worker advances the iterator only when `next` asks,
    so a generator is never run ahead of its consumer. ``next(timeout)`` returns the next
    item, None when the iterator is exhausted, or raises what the iterator raised, or
    TimeoutError. ``close()`` has the worker close the iterator: at once when it is idle, or
    after the read it is blocked in (which ends by the read's own timeout).
    """

    __slots__ = ("_busy", "_closed", "_items", "_requests")

    def __init__(self, open_iterator: Callable[[], Iterator[T]]) -> None:
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._busy = True  # opening the iterator
        _workers.submit(_Job(_in_context(lambda: self._pump(open_iterator))))

    def _pump(self, open_iterator: Callable[[], Iterator[T]]) -> None:
        iterator = None
        try:
            iterator = iter(open_iterator())
            while True:
                self._busy = False
                if self._requests.get() is _CLOSE:
                    return
                self._busy = True
                try:
                    item = next(iterator)
                except StopIteration:
                    self._items.put(_END)
                    return
                self._items.put(item)
        except BaseException as exc:  # handed to the reader, who re-raises it
            self._items.put(_Raised(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                # Nobody is left to tell of a failed close: the reader has moved on.
                with contextlib.suppress(Exception):
                    close()
            self._closed.set()

    def next(self, timeout: float, what: str = "model call") -> T | None:
        """The next item, or None at the end.

        Raises:
            TimeoutError: No item arrived within ``timeout`` seconds.
        """
        self._requests.put(_NEXT)
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            raise _timeout_error(timeout, what) from None
        if item is _END:
            return None
        if isinstance(item, _Raised):
            raise item.error
        result: T = item
        return result

    def close(self) -> None:
        """Stop reading; the worker closes the iterator (waited for when it is idle)."""
        self._requests.put(_CLOSE)
        if not self._busy:
            self._closed.wait(_CLOSE_WAIT)


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
