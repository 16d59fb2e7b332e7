"""A scripted in-process model: queued replies, errors and latencies, and a log of calls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from reliable_llm._capabilities import ANY_CONTENT, ModelCapabilities
from reliable_llm._clock import Clock
from reliable_llm._provider import Provider
from reliable_llm._types import ChatRequest, ChatResponse, StreamChunk, ToolCallDelta, Usage

__all__ = ["Reply", "ScriptedModel", "StreamBreak"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: text or a full response, after ``latency`` seconds."""

    response: str | ChatResponse
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamBreak:
    """A stream that yields ``text`` in chunks, then fails with ``error``."""

    text: str
    error: BaseException


Step = str | ChatResponse | BaseException | type[BaseException] | Reply | StreamBreak


class ScriptedModel(Provider):
    """A model that answers from a script, for tests, notebooks and demos.

    Each call takes the next step of the script: a ``str`` or `ChatResponse` is the answer,
    an exception (instance or class) is raised, `Reply` adds latency, `StreamBreak` streams
    some text and then fails. When the script is empty, ``default`` answers (an exception
    default makes a model that is down). Every request is logged in ``calls``.

    Timeouts are honoured like a real client's: a reply slower than the ``timeout`` the
    manager passes waits out the timeout (on ``clock``, or for real) and raises
    `TimeoutError`; ``Reply(..., latency=math.inf)`` is a model that hangs.

    Args:
        script: Steps consumed one per call, in order.
        default: The step used once the script is exhausted.
        latency: Seconds every call takes (on ``clock``, or real time if no clock).
        chunk_size: Characters per streamed chunk.
        clock: Sleep on this clock instead of real time.
        name: Provider name reported in responses.
        capabilities: The content parts it takes; by default every part as given (a test
            fake), ``ModelCapabilities()`` makes a text-only model.
    """

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        default: Step = "ok",
        latency: float = 0.0,
        chunk_size: int = 4,
        clock: Clock | None = None,
        name: str = "scripted",
        capabilities: ModelCapabilities = ANY_CONTENT,
    ) -> None:
        self._script: deque[Step] = deque(script)
        self.capabilities = capabilities
        self.default = default
        self.latency = latency
        self.chunk_size = chunk_size
        self.clock = clock
        self.provider_name = name
        self.calls: list[ChatRequest] = []
        self._lock = threading.Lock()

    #: It ends every call within the timeout it is given (see the class docstring).
    enforces_timeout = True

    @property
    def call_count(self) -> int:
        """How many calls reached this model."""
        return len(self.calls)

    def push(self, *steps: Step) -> None:
        """Append steps to the script."""
        with self._lock:
            self._script.extend(steps)

    def _next(self, request: ChatRequest) -> tuple[Step, float]:
        with self._lock:
            self.calls.append(request)
            step = self._script.popleft() if self._script else self.default
        if isinstance(step, Reply):
            return step.response, step.latency + self.latency
        return step, self.latency

    def _answer(self, step: Step) -> ChatResponse:
        if isinstance(step, BaseException) or (
            isinstance(step, type) and issubclass(step, BaseException)
        ):
            raise step
        if isinstance(step, StreamBreak):
            raise step.error
        if isinstance(step, ChatResponse):
            return step
        assert isinstance(step, str)
        words = len(step.split())
        return ChatResponse(
            text=step,
            provider=self.provider_name,
            usage=Usage(_count_tokens(self.calls[-1]), words),
        )

    def _wait(self, seconds: float, timeout: float | None) -> None:
        late = timeout is not None and seconds > timeout
        if late:
            seconds = timeout  # type: ignore[assignment]
        if seconds > 0:
            (self.clock.sleep if self.clock else time.sleep)(seconds)
        if late:
            raise TimeoutError(f"scripted reply took longer than its {timeout:g}s timeout")

    async def _await(self, seconds: float, timeout: float | None) -> None:
        late = timeout is not None and seconds > timeout
        if late:
            seconds = timeout  # type: ignore[assignment]
        if seconds > 0:
            await (self.clock.asleep(seconds) if self.clock else asyncio.sleep(seconds))
        if late:
            raise TimeoutError(f"scripted reply took longer than its {timeout:g}s timeout")

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Take the next step."""
        step, latency = self._next(request)
        self._wait(latency, timeout)
        return self._answer(step)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Take the next step without blocking the event loop."""
        step, latency = self._next(request)
        await self._await(latency, timeout)
        return self._answer(step)

    def _chunks(self, step: Step) -> Iterator[StreamChunk]:
        if isinstance(step, StreamBreak):
            for i in range(0, len(step.text), self.chunk_size):
                yield StreamChunk(text=step.text[i : i + self.chunk_size])
            raise step.error
        response = self._answer(step)
        for i in range(0, len(response.text), self.chunk_size):
            yield StreamChunk(text=response.text[i : i + self.chunk_size])
        deltas = tuple(
            ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(response.tool_calls)
        )
        yield StreamChunk(
            tool_call_deltas=deltas, finish_reason=response.finish_reason, usage=response.usage
        )

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        """Stream the next step in chunks of ``chunk_size`` characters."""
        step, latency = self._next(request)
        self._wait(latency, timeout)
        return self._chunks(step)

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`."""
        step, latency = self._next(request)
        await self._await(latency, timeout)
        for chunk in self._chunks(step):
            yield chunk

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self.provider_name!r}, pending={len(self._script)})"


def _count_tokens(request: ChatRequest) -> int:
    return sum(len(m.text.split()) for m in request.messages)
