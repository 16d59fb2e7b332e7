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
- ``reliable_llm_tokens_total{model,type}`` (``input``, ``output``);
- ``reliable_llm_cost_total{model}``: from the prices in the models' metadata.

They are ordinary ``prometheus_client`` metrics, so the library's multiprocess mode works
unchanged (set ``PROMETHEUS_MULTIPROC_DIR`` before ``prometheus_client`` is imported; the
breaker gauge then reports, per model and state, the maximum over live processes). Several
managers instrumented on one registry share the metrics.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

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
from reliable_llm._types import Attempt

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from reliable_llm._manager import LLMManager

__all__ = ["BUCKETS", "PrometheusInstrumentation", "instrument"]

BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Duration buckets in seconds: the OpenTelemetry GenAI conventions' operation buckets."""

_STATES = tuple(BreakerState)
_families: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


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
    with _families_lock:
        families = _families.get(registry)
        if families is None:
            families = _families[registry] = _Families(registry)
    hook = PrometheusInstrumentation(manager, families)
    manager.add_hook(hook)
    return hook


class _Families:
    """The metric families registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Counter(name, doc, labels, registry=registry)

        self.requests = counter(
            "reliable_llm_requests", "Requests served, by outcome.", ("outcome",)
        )
        self.request_duration = Histogram(
            "reliable_llm_request_duration_seconds",
            "Seconds from a request's start to its end, for requests that went upstream.",
            ("outcome",),
            buckets=BUCKETS,
            registry=registry,
        )
        self.attempts = counter(
            "reliable_llm_attempts",
            "Upstream calls, by model, outcome and error type.",
            ("model", "outcome", "error_type"),
        )
        self.attempt_duration = Histogram(
            "reliable_llm_attempt_duration_seconds",
            "Seconds each upstream call took.",
            ("model", "outcome"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.retries = counter(
            "reliable_llm_retries", "Calls retried on the same model.", ("model", "error_type")
        )
        self.fallbacks = counter(
            "reliable_llm_fallbacks",
            "Models given up, by pair and reason.",
            ("from_model", "to_model", "reason"),
        )
        self.cache_hits = counter(
            "reliable_llm_cache_hits", "Requests answered by the cache.", ("model",)
        )
        self.cache_misses = counter(
            "reliable_llm_cache_misses", "Cacheable requests not in the cache.", ("model",)
        )
        self.breaker_state = Gauge(
            "reliable_llm_breaker_state",
            "1 for the state each model's circuit breaker is in, 0 for the others.",
            ("model", "state"),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.tokens = counter(
            "reliable_llm_tokens", "Tokens of answered calls, by type.", ("model", "type")
        )
        self.cost = counter(
            "reliable_llm_cost",
            "Cost of answered calls, from the prices in the models' metadata.",
            ("model",),
        )


class PrometheusInstrumentation:
    """The event hook that updates the metrics; built by `instrument`.

    Labelled children are looked up once per label set and kept, so an event costs a dict
    lookup and the metric updates.
    """

    def __init__(self, manager: LLMManager, families: _Families) -> None:
        self._manager = manager
        self._m = families
        self._children: dict[tuple[object, ...], Any] = {}
        self._handlers = {
            Attempt: self._attempt,
            RequestFinished: self._request,
            CacheHit: self._cache_hit,
            CacheMiss: self._cache_miss,
            RetryScheduled: self._retry,
            FallbackTaken: self._fallback,
            BreakerTransition: self._transition,
        }
        for name, entry in manager._registry.models.items():
            self._set_state(name, entry.breaker.state)

    def uninstrument(self) -> None:
        """Stop counting this manager's requests."""
        self._manager.remove_hook(self)

    def __call__(self, event: Event) -> None:
        """Consume one event."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)  # type: ignore[operator]

    def _child(self, key: tuple[object, ...], metric: Any, *labels: str) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _set_state(self, model: str, state: BreakerState) -> None:
        gauge = self._m.breaker_state
        for each in _STATES:
            gauge.labels(model, each.value).set(1 if each is state else 0)

    def _attempt(self, event: Attempt) -> None:
        error = event.error
        key = ("attempt", event.model, type(error), event.cancelled)
        pair = self._children.get(key)
        if pair is None:
            if event.cancelled:
                outcome, kind = "cancelled", "none"
            elif error is None:
                outcome, kind = "success", "none"
            else:
                outcome, kind = "failure", error_type(error)
            m = self._m
            pair = self._children[key] = (
                m.attempts.labels(event.model, outcome, kind),
                m.attempt_duration.labels(event.model, outcome),
            )
        pair[0].inc()
        pair[1].observe(event.duration)

    def _request(self, event: RequestFinished) -> None:
        model = event.model
        outcome = outcome_of(model, event.cancelled)
        m = self._m
        self._child(("requests", outcome), m.requests, outcome).inc()
        self._child(("latency", outcome), m.request_duration, outcome).observe(event.latency)
        if model is None:
            return
        usage = event.usage
        if usage is not None:
            self._child(("in", model), m.tokens, model, "input").inc(usage.input_tokens)
            self._child(("out", model), m.tokens, model, "output").inc(usage.output_tokens)
        response = event.response
        if response is not None and response.cost is not None:
            self._child(("cost", model), m.cost, model).inc(response.cost)

    def _cache_hit(self, event: CacheHit) -> None:
        m = self._m
        self._child(("requests", "success"), m.requests, "success").inc()
        self._child(("hit", event.model), m.cache_hits, event.model).inc()

    def _cache_miss(self, event: CacheMiss) -> None:
        self._child(("miss", event.model), self._m.cache_misses, event.model).inc()

    def _retry(self, event: RetryScheduled) -> None:
        # ``event.error`` is the error's class name: ours, or a user's own subclass (bounded
        # by the classes a program defines).
        self._m.retries.labels(event.model, event.error).inc()

    def _fallback(self, event: FallbackTaken) -> None:
        to_model = "none" if event.to_model is None else event.to_model
        self._m.fallbacks.labels(event.from_model, to_model, str(event.reason)).inc()

    def _transition(self, event: BreakerTransition) -> None:
        self._set_state(event.model, event.new)
