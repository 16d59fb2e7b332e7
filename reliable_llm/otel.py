"""OpenTelemetry traces and metrics following the GenAI semantic conventions (extra ``otel``).

One call turns it on::

    import reliable_llm.otel

    reliable_llm.otel.instrument(manager)  # the global tracer and meter providers

Each logical request becomes an ``INTERNAL`` span named ``reliable_llm.request`` carrying our
own ``reliable_llm.*`` attributes (route, models given up and why, retries, cache hit, breaker
rejections, time budget); it is deliberately not a GenAI span, so tracing backends do not
count the call twice. Under it, each upstream attempt is a ``CLIENT`` span named
``chat {gen_ai.request.model}`` with the GenAI attributes. Metrics:
``gen_ai.client.operation.duration`` (s), ``gen_ai.client.token.usage`` ({token}),
``gen_ai.client.operation.time_to_first_chunk`` (s), and our counters
``reliable_llm.retries``, ``reliable_llm.fallbacks``, ``reliable_llm.breaker.transitions``,
``reliable_llm.cache.hits``, ``reliable_llm.cache.misses``, ``reliable_llm.cost``.

Spans are written when the request ends, with the start and end times the manager measured:
they are not the current span while the provider is called, so spans of an instrumented HTTP
client do not nest under them. Message content is recorded only with ``capture_content=True``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reliable_llm._errors import ConfigurationError, FailureReason
from reliable_llm._events import (
    BreakerTransition,
    CacheHit,
    CacheMiss,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)
from reliable_llm._observe import ModelFacts, error_type, model_facts, outcome
from reliable_llm._otel_content import input_attributes, output_attributes, request_attributes
from reliable_llm._types import Attempt, ChatResponse

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from reliable_llm._manager import LLMManager

__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "OTelInstrumentation", "instrument"]

DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""Bucket boundaries (seconds) the conventions give ``gen_ai.client.operation.duration``."""

TOKEN_BUCKETS = tuple(4**n for n in range(14))
"""Explicit bucket boundaries the conventions give ``gen_ai.client.token.usage`` (1 ... 4**13)."""

_SCOPE = "reliable_llm"
_CHAT = "chat"
_CIRCUIT_OPEN = FailureReason.CIRCUIT_OPEN
_DEADLINE = FailureReason.DEADLINE_EXCEEDED


def instrument(
    manager: LLMManager,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool = False,
) -> OTelInstrumentation:
    """Export ``manager``'s requests as OpenTelemetry spans and metrics.

    Args:
        manager: The manager to observe.
        tracer_provider: Where spans go; the global tracer provider when None.
        meter_provider: Where metrics go; the global meter provider when None.
        capture_content: Record messages (``gen_ai.input.messages``,
            ``gen_ai.output.messages``, ``gen_ai.system_instructions``) on attempt spans.
            Off by default: prompts and answers often hold personal data.

    Returns:
        The installed instrumentation; call its ``uninstrument()`` to stop.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed (extra ``otel``).
    """
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        raise ConfigurationError(
            "reliable_llm.otel needs OpenTelemetry: pip install 'reliable-llm[otel]'"
        ) from exc
    tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
    meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
    hook = OTelInstrumentation(manager, tracer, meter, capture_content)
    manager.add_hook(hook)
    return hook


class OTelInstrumentation:
    """The event hook that writes spans and metrics; built by `instrument`."""

    def __init__(self, manager: LLMManager, tracer: Any, meter: Any, capture_content: bool) -> None:
        from opentelemetry import metrics, trace

        self._manager = manager
        self._registry = manager._registry
        self._clock = manager.clock
        self._tracer = tracer
        self._trace = trace
        self._capture = capture_content
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._retries = meter.create_counter(
            "reliable_llm.retries", unit="{retry}", description="Attempts retried on a model."
        )
        self._fallbacks = meter.create_counter(
            "reliable_llm.fallbacks", unit="{fallback}", description="Models given up."
        )
        self._transitions = meter.create_counter(
            "reliable_llm.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes.",
        )
        self._hits = meter.create_counter(
            "reliable_llm.cache.hits", unit="{hit}", description="Requests answered by the cache."
        )
        self._misses = meter.create_counter(
            "reliable_llm.cache.misses", unit="{miss}", description="Cacheable requests missed."
        )
        self._cost = meter.create_counter(
            "reliable_llm.cost",
            unit="{USD}",
            description="Cost of answered calls, from the prices in the models' metadata.",
        )
        # Cheap paths for the API's no-op providers: nothing is built for them.
        self._tracing = not isinstance(tracer, trace.NoOpTracer)
        self._metering = not isinstance(self._duration, metrics.NoOpHistogram)
        self._handlers = {
            RequestFinished: self._request,
            CacheHit: self._cache_hit,
            CacheMiss: self._cache_miss,
            RetryScheduled: self._retry,
            FallbackTaken: self._fallback,
            BreakerTransition: self._transition,
        }

    def uninstrument(self) -> None:
        """Stop exporting this manager's requests."""
        self._manager.remove_hook(self)

    def __call__(self, event: Event) -> None:
        """Consume one event (attempts are exported with the request they belong to)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)  # type: ignore[operator]

    # -- counters ---------------------------------------------------------------------------

    def _retry(self, event: RetryScheduled) -> None:
        self._retries.add(1, {"reliable_llm.model": event.model, "error.type": event.error})

    def _fallback(self, event: FallbackTaken) -> None:
        attributes = {
            "reliable_llm.fallback.from": event.from_model,
            "reliable_llm.fallback.reason": str(event.reason),
        }
        if event.to_model is not None:
            attributes["reliable_llm.fallback.to"] = event.to_model
        self._fallbacks.add(1, attributes)

    def _transition(self, event: BreakerTransition) -> None:
        self._transitions.add(
            1, {"reliable_llm.model": event.model, "reliable_llm.breaker.state": event.new.value}
        )

    def _cache_miss(self, event: CacheMiss) -> None:
        self._misses.add(1, {"reliable_llm.model": event.model})

    def _cache_hit(self, event: CacheHit) -> None:
        self._hits.add(1, {"reliable_llm.model": event.model})
        if not self._tracing:
            return
        span = self._tracer.start_span("reliable_llm.request", kind=self._trace.SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes(
                {
                    "reliable_llm.request.model": event.model,
                    "reliable_llm.response.model": event.answered_by,
                    "reliable_llm.outcome": "success",
                    "reliable_llm.cache.hit": True,
                    "reliable_llm.attempts": 0,
                }
            )
        span.end()

    # -- a finished request: its span, its attempts' spans and metrics ----------------------

    def _request(self, event: RequestFinished) -> None:
        if self._tracing:
            self._trace_request(event)
        if self._metering:
            self._measure_request(event)

    def _trace_request(self, event: RequestFinished) -> None:
        trace = self._trace
        now_ns = time.time_ns()
        now = self._clock.monotonic()

        def wall(moment: float) -> int:
            return now_ns - int((now - moment) * 1e9)

        span = self._tracer.start_span(
            "reliable_llm.request",
            kind=trace.SpanKind.INTERNAL,
            start_time=wall(now - event.latency),
        )
        if not span.is_recording():  # not sampled: neither are its attempts
            span.end(end_time=now_ns)
            return
        span.set_attributes(_request_summary(event))
        if event.model is None and not event.cancelled:
            span.set_attribute("error.type", "AllModelsFailedError")
            span.set_status(trace.StatusCode.ERROR)
        context = trace.set_span_in_context(span)
        request_attrs = None if event.request is None else request_attributes(event.request)
        for attempt, response in _attempts(event):
            facts = model_facts(self._registry, attempt.model)
            child = self._tracer.start_span(
                f"{_CHAT} {facts.request_model}",
                context=context,
                kind=trace.SpanKind.CLIENT,
                start_time=wall(attempt.started),
            )
            if child.is_recording():
                self._describe_attempt(child, attempt, response, facts, event, request_attrs)
            child.end(end_time=wall(attempt.started + attempt.duration))
        span.end(end_time=now_ns)

    def _describe_attempt(
        self,
        span: Any,
        attempt: Attempt,
        response: ChatResponse | None,
        facts: ModelFacts,
        event: RequestFinished,
        request_attrs: dict[str, Any] | None,
    ) -> None:
        span.set_attributes(_genai_attributes(attempt, response, facts))
        span.set_attributes(
            {"reliable_llm.model": attempt.model, "reliable_llm.attempt": attempt.number}
        )
        if request_attrs:
            span.set_attributes(request_attrs)
        if event.stream:
            span.set_attribute("gen_ai.request.stream", True)
        if attempt.first_chunk is not None:
            span.set_attribute("gen_ai.response.time_to_first_chunk", attempt.first_chunk)
        if attempt.cancelled:
            span.set_attribute("reliable_llm.attempt.cancelled", True)
        if attempt.error is not None:
            span.set_status(self._trace.StatusCode.ERROR)
        if response is not None:
            span.set_attributes(_response_attributes(response))
        if self._capture and event.request is not None:
            span.set_attributes(input_attributes(event.request))
            if response is not None:
                span.set_attributes(output_attributes(response))

    def _measure_request(self, event: RequestFinished) -> None:
        for attempt, response in _attempts(event):
            if attempt.cancelled:
                continue
            facts = model_facts(self._registry, attempt.model)
            attributes = _genai_attributes(attempt, response, facts)
            self._duration.record(attempt.duration, attributes)
            if attempt.first_chunk is not None:
                self._first_chunk.record(attempt.first_chunk, attributes)
            if response is not None and response.usage is not None:
                usage = response.usage
                self._tokens.record(
                    usage.input_tokens, {**attributes, "gen_ai.token.type": "input"}
                )
                self._tokens.record(
                    usage.output_tokens, {**attributes, "gen_ai.token.type": "output"}
                )
        response = event.response
        if response is not None and response.cost is not None:
            self._cost.add(response.cost, {"reliable_llm.model": response.model})


def _attempts(event: RequestFinished) -> Iterator[tuple[Attempt, ChatResponse | None]]:
    """Each attempt of the request, with the response for the one that answered."""
    response = event.response
    last = len(event.attempts) - 1
    for index, attempt in enumerate(event.attempts):
        answered = index == last and response is not None and attempt.succeeded
        yield attempt, response if answered else None


def _genai_attributes(
    attempt: Attempt, response: ChatResponse | None, facts: ModelFacts
) -> dict[str, Any]:
    """The attributes an attempt's span and its metrics share."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": _CHAT,
        "gen_ai.provider.name": facts.provider,
        "gen_ai.request.model": facts.request_model,
    }
    if response is not None:
        attributes["gen_ai.response.model"] = response.provider_model or facts.request_model
    elif attempt.error is not None:
        attributes["error.type"] = error_type(attempt.error)
    return attributes


def _request_summary(event: RequestFinished) -> dict[str, Any]:
    """Our own attributes of one logical request (no ``gen_ai.*``: it is not a GenAI call)."""
    failures = event.failures
    attributes: dict[str, Any] = {
        "reliable_llm.request.model": event.requested_model,
        "reliable_llm.route": event.route,
        "reliable_llm.outcome": outcome(event.model, event.cancelled),
        "reliable_llm.cache.hit": False,
        "reliable_llm.stream": event.stream,
        "reliable_llm.attempts": len(event.attempts),
        "reliable_llm.retries": sum(1 for a in event.attempts if a.number > 1),
        "reliable_llm.fallback.models": tuple(f.model for f in failures),
        "reliable_llm.fallback.reasons": tuple(str(f.reason) for f in failures),
        "reliable_llm.breaker.rejections": sum(1 for f in failures if f.reason is _CIRCUIT_OPEN),
        "reliable_llm.timeout": event.timeout,
        "reliable_llm.deadline_exceeded": bool(failures) and failures[-1].reason is _DEADLINE,
    }
    if event.model is not None:
        attributes["reliable_llm.response.model"] = event.model
    response = event.response
    if response is not None and response.cost is not None:
        attributes["reliable_llm.cost"] = response.cost
    return attributes


def _response_attributes(response: ChatResponse) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.response.finish_reasons": (response.finish_reason,),
    }
    if response.response_id is not None:
        attributes["gen_ai.response.id"] = response.response_id
    usage = response.usage
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cache_read_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
        if usage.cache_creation_tokens:
            attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_creation_tokens
        if usage.reasoning_tokens:
            attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    if response.cost is not None:
        attributes["reliable_llm.cost"] = response.cost
    return attributes
