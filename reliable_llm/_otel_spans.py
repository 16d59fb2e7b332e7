"""Live OpenTelemetry spans: the request span and each attempt's span, current while they run.

`SpanTracer` is the `reliable_llm._tracing.Tracer` that `reliable_llm.otel.instrument`
installs. A request's ``INTERNAL`` span is the current span while our code serves the request
(the cache, the engine, event hooks); each upstream attempt's ``CLIENT`` span is the current
span while its provider is called (the call, and each step of a stream, in whatever thread
or task runs it), so spans of an instrumented HTTP client, or of user code inside a model
function, nest under the attempt that made them. Neither is ever current while the caller's
own code runs between two chunks of a stream, so nothing leaks into the caller's context or
across asyncio tasks.

Imported only by `reliable_llm.otel.instrument`: it needs ``opentelemetry-api``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from reliable_llm._errors import ReliableLLMError
from reliable_llm._events import RequestFinished
from reliable_llm._observe import ModelFacts, error_type, model_facts
from reliable_llm._otel_attributes import (
    CHAT,
    genai_attributes,
    request_summary,
    response_attributes,
)
from reliable_llm._otel_content import input_attributes, output_attributes, request_attributes
from reliable_llm._provider import Provider
from reliable_llm._types import Attempt, ChatRequest, ChatResponse, StreamChunk

if TYPE_CHECKING:
    from reliable_llm._attempts import ModelAttempts
    from reliable_llm._clock import Clock
    from reliable_llm._engine import StreamState
    from reliable_llm._plan import Plan
    from reliable_llm._registry import Registry

__all__ = ["SpanTracer"]

logger = logging.getLogger("reliable_llm")

_END: Any = object()
_CLIENT = trace.SpanKind.CLIENT
_INTERNAL = trace.SpanKind.INTERNAL
_ERROR = trace.StatusCode.ERROR
_attach = otel_context.attach
_detach = otel_context.detach


class SpanTracer:
    """Wraps each request of one manager in a live ``reliable_llm.request`` span."""

    __slots__ = ("capture", "clock", "registry", "tracer")

    def __init__(self, tracer: trace.Tracer, registry: Registry, clock: Clock, capture: bool):
        self.tracer = tracer
        self.registry = registry
        self.clock = clock
        self.capture = capture

    def _begin(self, plan: Plan, stream: bool) -> _RequestTrace:
        request_trace = _RequestTrace(self, plan, stream)
        plan.trace = request_trace
        return request_trace

    def serve(self, serve: Callable[[Plan], ChatResponse], plan: Plan) -> ChatResponse:
        """``serve(plan)`` with the request's span current."""
        request_trace = self._begin(plan, False)
        token = _attach(request_trace.context)
        response = error = None
        try:
            response = serve(plan)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            _detach(token)
            request_trace.end(response, error)

    async def aserve(
        self, serve: Callable[[Plan], Awaitable[ChatResponse]], plan: Plan
    ) -> ChatResponse:
        """Async twin of `serve`: the span is current in this task only."""
        request_trace = self._begin(plan, False)
        token = _attach(request_trace.context)
        response = error = None
        try:
            response = await serve(plan)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            _detach(token)
            request_trace.end(response, error)

    def stream(
        self,
        stream: Callable[[Plan, StreamState], Iterator[StreamChunk]],
        plan: Plan,
        state: StreamState,
    ) -> Iterator[StreamChunk]:
        """The chunks of ``stream(plan, state)``; the span is current while each is made,
        never while the caller holds one."""
        request_trace = self._begin(plan, True)
        context = request_trace.context
        inner = stream(plan, state)
        error: BaseException | None = None
        try:
            while True:
                token = _attach(context)
                try:
                    chunk = next(inner, _END)
                finally:
                    _detach(token)
                if chunk is _END:
                    return
                yield chunk
        except BaseException as exc:  # GeneratorExit: the caller abandoned the stream
            error = exc
            raise
        finally:
            token = _attach(context)
            try:
                inner.close()  # type: ignore[attr-defined]
            finally:
                _detach(token)
                request_trace.end(state.response, error)

    async def astream(
        self,
        stream: Callable[[Plan, StreamState], AsyncIterator[StreamChunk]],
        plan: Plan,
        state: StreamState,
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`."""
        request_trace = self._begin(plan, True)
        context = request_trace.context
        inner = stream(plan, state)
        error: BaseException | None = None
        try:
            while True:
                token = _attach(context)
                try:
                    chunk = await anext(inner, _END)
                finally:
                    _detach(token)
                if chunk is _END:
                    return
                yield chunk
        except BaseException as exc:  # GeneratorExit or CancelledError: abandoned
            error = exc
            raise
        finally:
            token = _attach(context)
            try:
                await inner.aclose()  # type: ignore[attr-defined]
            finally:
                _detach(token)
                request_trace.end(state.response, error)


class _RequestTrace:
    """One request's span (a `reliable_llm._tracing.RequestTrace`), kept on its plan.

    Times are the manager's clock, placed on the wall clock at the request's start, so a
    request measured on a test's fake clock exports the times the manager measured.
    """

    __slots__ = ("_anchor", "_request_attrs", "context", "owner", "plan", "span", "stream")

    def __init__(self, owner: SpanTracer, plan: Plan, stream: bool) -> None:
        self.owner = owner
        self.plan = plan
        self.stream = stream
        self._anchor = (time.time_ns(), owner.clock.monotonic())
        self._request_attrs: dict[str, Any] | None = None
        self.span = owner.tracer.start_span(
            "reliable_llm.request",
            kind=_INTERNAL,
            start_time=self.wall(plan.started),
            attributes={
                "reliable_llm.request.model": plan.requested,
                "reliable_llm.route": plan.route,
                "reliable_llm.stream": stream,
                "reliable_llm.timeout": plan.total,
            },
        )
        self.context = trace.set_span_in_context(self.span)

    def wall(self, moment: float) -> int:
        """A moment on the manager's clock as nanoseconds since the epoch."""
        wall_ns, monotonic = self._anchor
        return wall_ns + int((moment - monotonic) * 1e9)

    def request_attributes(self) -> dict[str, Any]:
        attributes = self._request_attrs
        if attributes is None:
            attributes = self._request_attrs = request_attributes(self.plan.request)
        return attributes

    def attempt(self, tries: ModelAttempts) -> _AttemptSpan | None:
        """The ``CLIENT`` span of the attempt ``tries`` just started (None when not sampled)."""
        if not self.span.is_recording():
            return None  # the request span stays current: its context still propagates
        try:
            facts = model_facts(self.owner.registry, tries.entry.name)
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": CHAT,
                "gen_ai.provider.name": facts.provider,
                "gen_ai.request.model": facts.request_model,
                **self.request_attributes(),
                "reliable_llm.model": tries.entry.name,
                "reliable_llm.attempt": tries.number,
            }
            if self.stream:
                attributes["gen_ai.request.stream"] = True
            span = self.owner.tracer.start_span(
                f"{CHAT} {facts.request_model}",
                context=self.context,
                kind=_CLIENT,
                start_time=self.wall(tries.started),
                attributes=attributes,
            )
        except Exception:  # tracing must never fail a request
            logger.exception("OpenTelemetry: could not start an attempt span")
            return None
        return _AttemptSpan(self, span, facts)

    def provider(self, provider: Provider, tries: ModelAttempts) -> Provider:
        """``provider``, calling it with the attempt's span current."""
        return _SpanProvider(provider, tries)

    def end(self, response: ChatResponse | None, error: BaseException | None) -> None:
        """End the request span with its summary (never raises)."""
        span = self.span
        end_time = None
        try:
            plan = self.plan
            now = self.owner.clock.monotonic()
            end_time = self.wall(now)
            if not span.is_recording():
                return
            cancelled = response is None and not isinstance(error, Exception)
            usage = None if response is None else response.usage
            summary = RequestFinished(
                plan.requested,
                None if response is None else response.model,
                now - plan.started,
                usage,
                self.stream,
                cancelled,
                tuple(plan.attempts),
                tuple(plan.failures),
                response,
                None,
                plan.route,
                plan.total,
            )
            attributes = request_summary(summary)
            if response is not None and response.cached:
                attributes["reliable_llm.cache.hit"] = True
            failed = response is None and error is not None and not cancelled
            if failed:
                attributes["error.type"] = _error_name(error)  # type: ignore[arg-type]
            span.set_attributes(attributes)
            if failed:
                span.set_status(_ERROR)
        except Exception:
            logger.exception("OpenTelemetry: could not describe a request span")
        finally:
            span.end(end_time=end_time)


class _AttemptSpan:
    """One upstream attempt's span (a `reliable_llm._tracing.AttemptSpan`)."""

    __slots__ = ("context", "facts", "request_trace", "span")

    def __init__(self, request_trace: _RequestTrace, span: trace.Span, facts: ModelFacts):
        self.request_trace = request_trace
        self.span = span
        self.facts = facts
        self.context: Context = trace.set_span_in_context(span, request_trace.context)

    def end(
        self,
        attempt: Attempt | None,
        response: ChatResponse | None,
        error: BaseException | None = None,
    ) -> None:
        """End the span with the attempt's outcome (never raises)."""
        span = self.span
        request_trace = self.request_trace
        end_time = None
        try:
            if attempt is None:  # never sent: the caller's own mistake
                end_time = request_trace.wall(request_trace.owner.clock.monotonic())
                if error is not None:
                    span.set_attribute("error.type", _error_name(error))
                span.set_status(_ERROR)
                return
            end_time = request_trace.wall(attempt.started + attempt.duration)
            if not span.is_recording():
                return
            attributes = genai_attributes(attempt, response, self.facts)
            if attempt.first_chunk is not None:
                attributes["gen_ai.response.time_to_first_chunk"] = attempt.first_chunk
            if attempt.cancelled:
                attributes["reliable_llm.attempt.cancelled"] = True
            if response is not None:
                attributes.update(response_attributes(response))
            if request_trace.owner.capture:
                attributes.update(input_attributes(request_trace.plan.request))
                if response is not None:
                    attributes.update(output_attributes(response))
            span.set_attributes(attributes)  # one call: the SDK locks and checks per call
            if attempt.error is not None:
                span.set_status(_ERROR)
        except Exception:
            logger.exception("OpenTelemetry: could not describe an attempt span")
        finally:
            span.end(end_time=end_time)


def _error_name(error: BaseException) -> str:
    """``error.type``: our error class (a closed set), else the exception's class name."""
    if isinstance(error, ReliableLLMError):
        return error_type(error)
    return type(error).__qualname__


def _enter(tries: ModelAttempts) -> object:
    span = tries.span
    if span is None:
        return None
    return _attach(span.context)  # type: ignore[attr-defined]


def _exit(token: Any) -> None:
    if token is not None:
        _detach(token)


class _SpanProvider(Provider):
    """A model's provider whose every call (and every step of its streams) runs with the
    current attempt's span current, in whichever thread or task makes it."""

    def __init__(self, provider: Provider, tries: ModelAttempts) -> None:
        self._provider = provider
        self._tries = tries
        self.provider_name = provider.provider_name
        self.enforces_timeout = provider.enforces_timeout

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        token = _enter(self._tries)
        try:
            return self._provider.complete(request, timeout=timeout)
        finally:
            _exit(token)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        token = _enter(self._tries)
        try:
            return await self._provider.acomplete(request, timeout=timeout)
        finally:
            _exit(token)

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        tries = self._tries
        token = _enter(tries)
        try:
            iterator = iter(self._provider.stream(request, timeout=timeout))
        finally:
            _exit(token)
        try:
            while True:
                token = _enter(tries)
                try:
                    chunk = next(iterator, _END)
                finally:
                    _exit(token)
                if chunk is _END:
                    return
                yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                token = _enter(tries)
                try:
                    close()
                finally:
                    _exit(token)

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        tries = self._tries
        token = _enter(tries)
        try:
            iterator = aiter(self._provider.astream(request, timeout=timeout))
        finally:
            _exit(token)
        try:
            while True:
                token = _enter(tries)
                try:
                    chunk = await anext(iterator, _END)
                finally:
                    _exit(token)
                if chunk is _END:
                    return
                yield chunk
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                token = _enter(tries)
                try:
                    await aclose()
                finally:
                    _exit(token)
