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

Spans are live: the request span is the current span while the manager serves the request,
and each attempt's span while its provider is called (every step of a stream included, in
whatever worker thread runs it), so the spans of an instrumented HTTP client, or of your own
code inside a model function, nest under the attempt that made them. Neither is current
while your code holds a chunk of a stream. Start and end times are those the manager
measured on its clock. Message content is recorded only with ``capture_content=True``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reliable_llm._errors import ConfigurationError
from reliable_llm._events import (
    BreakerTransition,
    CacheHit,
    CacheMiss,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)
from reliable_llm._observe import model_facts
from reliable_llm._otel_attributes import genai_attributes
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
        ConfigurationError: ``opentelemetry-api`` is not installed (extra ``otel``), or
            ``manager`` is already instrumented (uninstrument the first one).
    """
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        raise ConfigurationError(
            "reliable_llm.otel needs OpenTelemetry: pip install 'reliable-llm[otel]'"
        ) from exc
    server = manager._server
    tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
    meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
    hook = OTelInstrumentation(manager, tracer, meter, capture_content)
    with _lock:
        if manager in _instrumented:
            raise ConfigurationError(
                "this manager is already instrumented with OpenTelemetry; call uninstrument() "
                "on the instrumentation instrument() returned before instrumenting it again"
            )
        _instrumented[manager] = hook
    # The API's no-op providers make nothing: then nothing is installed, and calls cost nothing.
    if hook._metering:
        manager.add_hook(hook)
    if hook._tracing:
        from reliable_llm._otel_spans import SpanTracer

        server.tracer = SpanTracer(tracer, manager._registry, manager.clock, capture_content)
    return hook


# Each instrumented manager and its instrumentation (one at a time: a second would double
# every span and metric).
_instrumented: weakref.WeakKeyDictionary[LLMManager, OTelInstrumentation] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


class OTelInstrumentation:
    """The event hook that records metrics (spans are made live by a `SpanTracer` on the
    manager); built by `instrument`."""

    def __init__(self, manager: LLMManager, tracer: Any, meter: Any, capture_content: bool) -> None:
        from opentelemetry import metrics, trace

        self._manager = manager
        self._registry = manager._registry
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
        """Stop exporting this manager's requests (requests under way finish their spans)."""
        manager = self._manager
        with _lock:
            if _instrumented.get(manager) is not self:
                return  # already uninstrumented
            del _instrumented[manager]
        manager._server.tracer = None
        manager.remove_hook(self)

    def __call__(self, event: Event) -> None:
        """Consume one event (attempts are measured with the request they belong to)."""
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

    # -- a finished request: its attempts' durations and tokens, its cost -------------------

    def _request(self, event: RequestFinished) -> None:
        if self._metering:
            self._measure_request(event)

    def _measure_request(self, event: RequestFinished) -> None:
        for attempt, response in _attempts(event):
            if attempt.cancelled:
                continue
            facts = model_facts(self._registry, attempt.model)
            attributes = genai_attributes(attempt, response, facts)
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
