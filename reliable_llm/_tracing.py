"""The hook a tracing exporter installs around requests and provider calls.

The core never imports a tracing library: an exporter (``reliable_llm.otel``) sets
``Server.tracer`` to an object of the `Tracer` shape, and only then does any of this run.
With no tracer, a request pays one ``is None`` test per layer.

    Server.serve(plan) --tracer.serve--> RequestTrace on plan.trace, current for the request
      ModelAttempts.start()  --trace.attempt--> AttemptSpan, one per upstream attempt
        tries.provider: the model's provider, each call made with the attempt span current
      ModelAttempts ends the attempt (answered, failed, cancelled) --span.end(...)

A `RequestTrace` is made current only around our own work (never across a ``yield`` to the
caller of a stream), so it cannot leak into the caller's code or across asyncio tasks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reliable_llm._attempts import ModelAttempts
    from reliable_llm._engine import StreamState
    from reliable_llm._plan import Plan
    from reliable_llm._provider import Provider
    from reliable_llm._types import Attempt, ChatResponse, StreamChunk

__all__ = ["AttemptSpan", "RequestTrace", "Tracer"]


class AttemptSpan(Protocol):
    """One upstream attempt's span, begun by `RequestTrace.attempt`."""

    def end(
        self,
        attempt: Attempt | None,
        response: ChatResponse | None,
        error: BaseException | None = None,
    ) -> None:
        """End the span: ``attempt`` is the record (None for a call that was never an
        attempt, a local ``error`` such as a `ConfigurationError`), ``response`` the answer."""


class RequestTrace(Protocol):
    """One request's trace, kept on ``Plan.trace`` while the request runs."""

    def attempt(self, tries: ModelAttempts) -> AttemptSpan | None:
        """Begin the span of the attempt ``tries`` just started (None: not traced)."""

    def provider(self, provider: Provider, tries: ModelAttempts) -> Provider:
        """``provider``, with each call made while ``tries.span`` is current."""


class Tracer(Protocol):
    """Wraps each request so that a `RequestTrace` is current while our code serves it."""

    def serve(self, serve: Callable[[Plan], ChatResponse], plan: Plan) -> ChatResponse:
        """``serve(plan)`` inside the request's trace."""

    def aserve(
        self, serve: Callable[[Plan], Awaitable[ChatResponse]], plan: Plan
    ) -> Awaitable[ChatResponse]:
        """Async twin of `serve`."""

    def stream(
        self,
        stream: Callable[[Plan, StreamState], Iterator[StreamChunk]],
        plan: Plan,
        state: StreamState,
    ) -> Iterator[StreamChunk]:
        """The chunks of ``stream(plan, state)``, each produced inside the request's trace."""

    def astream(
        self,
        stream: Callable[[Plan, StreamState], AsyncIterator[StreamChunk]],
        plan: Plan,
        state: StreamState,
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`."""
