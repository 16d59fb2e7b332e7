"""Prometheus metrics of a manager's requests (extra ``prometheus``).

One call turns it on::

    import reliable_llm.prometheus

    reliable_llm.prometheus.instrument(manager)  # prometheus_client's default registry

The metrics (all label values bounded: registered model names, our error class names, a few
fixed words):

- ``reliable_llm_requests_total{outcome}``: ``success`` (cache hits included), ``failure``,
  ``cancelled``;
- ``reliable_llm_request_duration_seconds{outcome}``: requests that went upstream;
- ``reliable_llm_attempts_total{model,outcome,error_type}`` and
  ``reliable_llm_attempt_duration_seconds{model,outcome}``: upstream calls;
- ``reliable_llm_retries_total{model,error_type}``;
- ``reliable_llm_fallbacks_total{from_model,to_model,reason}`` (``to_model="none"``: none left);
- ``reliable_llm_cache_hits_total{model}``, ``reliable_llm_cache_misses_total{model}``;
- ``reliable_llm_breaker_state{model,state}``: 1 for the breaker's state, 0 for the others;
- ``reliable_llm_tokens_total{model,type}`` (``input``, ``output``, and of those
  ``cache_read``, ``cache_creation``, ``reasoning`` when the provider reports them);
- ``reliable_llm_cost_total{model}``: from the prices in the models' metadata.

In one process they come from a custom collector that builds them at scrape time. In
``prometheus_client``'s multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) they are ordinary
``prometheus_client`` metrics written to its shared files; the breaker gauge then reports, per
model and state, the maximum over live processes. Several managers instrumented on one
registry share the metrics.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING

from reliable_llm._breaker import BreakerState
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
from reliable_llm._observe import error_type
from reliable_llm._observe import outcome as outcome_of
from reliable_llm._prom_sinks import BUCKETS, ClientMetrics, LocalCollector, Sink
from reliable_llm._types import Attempt

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from reliable_llm._manager import LLMManager

__all__ = ["BUCKETS", "PrometheusInstrumentation", "instrument"]

_STATES = tuple(BreakerState)
_sinks: weakref.WeakKeyDictionary[CollectorRegistry, Sink] = weakref.WeakKeyDictionary()
_sinks_lock = threading.Lock()


def _multiprocess() -> bool:
    # prometheus_client's own test (prometheus_client.values.get_value_class).
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


def instrument(
    manager: LLMManager, *, registry: CollectorRegistry | None = None
) -> PrometheusInstrumentation:
    """Count ``manager``'s requests, attempts, retries, fallbacks, cache, tokens and cost.

    Args:
        manager: The manager to observe.
        registry: Where the metrics are registered; ``prometheus_client.REGISTRY`` when None.

    Returns:
        The installed instrumentation; call its ``uninstrument()`` to stop counting.

    Raises:
        ConfigurationError: ``prometheus-client`` is not installed (extra ``prometheus``).
    """
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigurationError(
            "reliable_llm.prometheus needs prometheus-client: "
            "pip install 'reliable-llm[prometheus]'"
        ) from exc
    if registry is None:
        registry = prometheus_client.REGISTRY
    with _sinks_lock:
        sink = _sinks.get(registry)
        if sink is None:
            if _multiprocess():
                sink = ClientMetrics(registry)
            else:
                sink = LocalCollector()
                registry.register(sink)
            _sinks[registry] = sink
    hook = PrometheusInstrumentation(manager, sink)
    manager.add_hook(hook)
    return hook


class PrometheusInstrumentation:
    """The event hook that updates the metrics; built by `instrument`."""

    def __init__(self, manager: LLMManager, sink: Sink) -> None:
        self._manager = manager
        self._sink = sink
        # Label tuples built once per distinct attempt shape.
        self._attempt_labels: dict[tuple[object, ...], tuple[tuple[str, ...], ...]] = {}
        self._handlers = {
            Attempt: self._attempt,
            RequestFinished: self._request,
            CacheHit: self._cache_hit,
            CacheMiss: self._cache_miss,
            RetryScheduled: self._retry,
            FallbackTaken: self._fallback,
            BreakerTransition: self._transition,
        }
        for entry in manager._registry.serving():  # models, and each group's deployments
            self._set_state(entry.name, entry.breaker.state)

    def uninstrument(self) -> None:
        """Stop counting this manager's requests."""
        self._manager.remove_hook(self)

    def __call__(self, event: Event) -> None:
        """Consume one event."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)  # type: ignore[operator]

    def _set_state(self, model: str, state: BreakerState) -> None:
        for each in _STATES:
            self._sink.set(
                "reliable_llm_breaker_state", (model, each.value), 1.0 if each is state else 0.0
            )

    def _attempt(self, event: Attempt) -> None:
        error = event.error
        key = (event.model, type(error), event.cancelled)
        labels = self._attempt_labels.get(key)
        if labels is None:
            if event.cancelled:
                outcome, kind = "cancelled", "none"
            elif error is None:
                outcome, kind = "success", "none"
            else:
                outcome, kind = "failure", error_type(error)
            labels = self._attempt_labels[key] = (
                (event.model, outcome, kind),
                (event.model, outcome),
            )
        self._sink.count_and_observe(
            "reliable_llm_attempts",
            labels[0],
            "reliable_llm_attempt_duration_seconds",
            labels[1],
            event.duration,
        )

    def _request(self, event: RequestFinished) -> None:
        model = event.model
        outcome = (outcome_of(model, event.cancelled),)
        sink = self._sink
        sink.count_and_observe(
            "reliable_llm_requests",
            outcome,
            "reliable_llm_request_duration_seconds",
            outcome,
            event.latency,
        )
        if model is None:
            return
        usage = event.usage
        if usage is not None:
            sink.inc("reliable_llm_tokens", (model, "input"), usage.input_tokens)
            sink.inc("reliable_llm_tokens", (model, "output"), usage.output_tokens)
            if usage.cache_read_tokens:
                sink.inc("reliable_llm_tokens", (model, "cache_read"), usage.cache_read_tokens)
            if usage.cache_creation_tokens:
                sink.inc(
                    "reliable_llm_tokens", (model, "cache_creation"), usage.cache_creation_tokens
                )
            if usage.reasoning_tokens:
                sink.inc("reliable_llm_tokens", (model, "reasoning"), usage.reasoning_tokens)
        response = event.response
        if response is not None and response.cost is not None:
            sink.inc("reliable_llm_cost", (model,), response.cost)

    def _cache_hit(self, event: CacheHit) -> None:
        self._sink.inc("reliable_llm_requests", ("success",))
        self._sink.inc("reliable_llm_cache_hits", (event.model,))

    def _cache_miss(self, event: CacheMiss) -> None:
        self._sink.inc("reliable_llm_cache_misses", (event.model,))

    def _retry(self, event: RetryScheduled) -> None:
        # ``event.error`` is the error's class name: ours, or a user's own subclass (bounded
        # by the classes a program defines).
        self._sink.inc("reliable_llm_retries", (event.model, event.error))

    def _fallback(self, event: FallbackTaken) -> None:
        to_model = "none" if event.to_model is None else event.to_model
        self._sink.inc("reliable_llm_fallbacks", (event.from_model, to_model, str(event.reason)))

    def _transition(self, event: BreakerTransition) -> None:
        self._set_state(event.model, event.new)
