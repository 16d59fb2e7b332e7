"""Where the Prometheus hook's numbers go: our own collector, or prometheus_client metrics.

In a single process, `LocalCollector` keeps plain numbers under one lock and builds the metric
families only when scraped, at a fraction of the cost of ``prometheus_client``'s per-metric
locks. In ``prometheus_client``'s multiprocess mode the numbers must be written to its shared
files, so `ClientMetrics` uses its ordinary metric classes instead.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["BUCKETS", "SPECS", "ClientMetrics", "LocalCollector", "Sink"]

BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Duration buckets in seconds: the OpenTelemetry GenAI conventions' operation buckets."""


class Spec(NamedTuple):
    """One metric: its name (without ``_total``), help text, type and label names."""

    name: str
    doc: str
    kind: str  # "counter", "histogram" or "gauge"
    labels: tuple[str, ...]


SPECS = {
    s.name: s
    for s in (
        Spec("reliable_llm_requests", "Requests served, by outcome.", "counter", ("outcome",)),
        Spec(
            "reliable_llm_request_duration_seconds",
            "Seconds from a request's start to its end, for requests that went upstream.",
            "histogram",
            ("outcome",),
        ),
        Spec(
            "reliable_llm_attempts",
            "Upstream calls, by model, outcome and error type.",
            "counter",
            ("model", "outcome", "error_type"),
        ),
        Spec(
            "reliable_llm_attempt_duration_seconds",
            "Seconds each upstream call took.",
            "histogram",
            ("model", "outcome"),
        ),
        Spec(
            "reliable_llm_retries",
            "Calls retried on the same model.",
            "counter",
            ("model", "error_type"),
        ),
        Spec(
            "reliable_llm_fallbacks",
            "Models given up, by pair and reason.",
            "counter",
            ("from_model", "to_model", "reason"),
        ),
        Spec("reliable_llm_cache_hits", "Requests answered by the cache.", "counter", ("model",)),
        Spec(
            "reliable_llm_cache_misses",
            "Cacheable requests not in the cache.",
            "counter",
            ("model",),
        ),
        Spec(
            "reliable_llm_breaker_state",
            "1 for the state each model's circuit breaker is in, 0 for the others.",
            "gauge",
            ("model", "state"),
        ),
        Spec(
            "reliable_llm_tokens",
            "Tokens of answered calls, by type.",
            "counter",
            ("model", "type"),
        ),
        Spec(
            "reliable_llm_cost",
            "Cost of answered calls, from the prices in the models' metadata.",
            "counter",
            ("model",),
        ),
    )
}


class Sink:
    """What the hook writes to (label values in the spec's order)."""

    def inc(self, metric: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to a counter."""
        raise NotImplementedError

    def observe(self, metric: str, labels: tuple[str, ...], value: float) -> None:
        """Record one histogram observation."""
        raise NotImplementedError

    def set(self, metric: str, labels: tuple[str, ...], value: float) -> None:
        """Set a gauge."""
        raise NotImplementedError

    def count_and_observe(
        self,
        counter: str,
        counter_labels: tuple[str, ...],
        histogram: str,
        histogram_labels: tuple[str, ...],
        value: float,
    ) -> None:
        """Add one to a counter and record ``value`` in a histogram (one event's update)."""
        self.inc(counter, counter_labels)
        self.observe(histogram, histogram_labels, value)


class LocalCollector(Sink):
    """A ``prometheus_client`` custom collector over plain numbers (one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[str, ...], float]] = {n: {} for n in SPECS}
        # Per series: a count per bucket (the last one +Inf), then the sum.
        self._histograms: dict[str, dict[tuple[str, ...], list[float]]] = {n: {} for n in SPECS}

    def inc(self, metric: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to a counter."""
        values = self._values[metric]
        with self._lock:
            values[labels] = values.get(labels, 0.0) + amount

    def set(self, metric: str, labels: tuple[str, ...], value: float) -> None:
        """Set a gauge."""
        values = self._values[metric]
        with self._lock:
            values[labels] = value

    def observe(self, metric: str, labels: tuple[str, ...], value: float) -> None:
        """Record one histogram observation."""
        index = bisect_left(BUCKETS, value)  # the first bucket whose bound is >= value
        series = self._histograms[metric]
        with self._lock:
            counts = series.get(labels)
            if counts is None:
                counts = series[labels] = [0.0] * (len(BUCKETS) + 2)
            counts[index] += 1
            counts[-1] += value

    def count_and_observe(
        self,
        counter: str,
        counter_labels: tuple[str, ...],
        histogram: str,
        histogram_labels: tuple[str, ...],
        value: float,
    ) -> None:
        """Add one to a counter and record ``value`` in a histogram, under one lock."""
        values = self._values[counter]
        series = self._histograms[histogram]
        index = bisect_left(BUCKETS, value)
        with self._lock:
            values[counter_labels] = values.get(counter_labels, 0.0) + 1.0
            counts = series.get(histogram_labels)
            if counts is None:
                counts = series[histogram_labels] = [0.0] * (len(BUCKETS) + 2)
            counts[index] += 1
            counts[-1] += value

    def describe(self) -> list[Any]:
        """The families without samples (so registering does not collect)."""
        return list(self._families(empty=True))

    def collect(self) -> Iterator[Any]:
        """The families with their current samples, for a scrape."""
        return self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        bounds = [repr(b) for b in BUCKETS] + ["+Inf"]  # as prometheus_client writes them
        with self._lock:
            values = {n: dict(v) for n, v in self._values.items()}
            histograms = {
                n: {k: list(c) for k, c in v.items()} for n, v in self._histograms.items()
            }
        for spec in SPECS.values():
            if spec.kind == "histogram":
                family: Any = HistogramMetricFamily(spec.name, spec.doc, labels=spec.labels)
                for labels, counts in [] if empty else sorted(histograms[spec.name].items()):
                    cumulative, total = [], 0.0
                    for bound, count in zip(bounds, counts[:-1], strict=True):
                        total += count
                        cumulative.append((bound, total))
                    family.add_metric(labels, cumulative, counts[-1])
            else:
                cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
                family = cls(spec.name, spec.doc, labels=spec.labels)
                for labels, value in [] if empty else sorted(values[spec.name].items()):
                    family.add_metric(labels, value)
            yield family


class ClientMetrics(Sink):
    """``prometheus_client`` metric objects, as its multiprocess mode needs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self._metrics: dict[str, Any] = {}
        for spec in SPECS.values():
            if spec.kind == "counter":
                metric: Any = Counter(spec.name, spec.doc, spec.labels, registry=registry)
            elif spec.kind == "histogram":
                metric = Histogram(
                    spec.name, spec.doc, spec.labels, buckets=BUCKETS, registry=registry
                )
            else:
                # Each process has its own breakers: report, per state, the max over the live.
                metric = Gauge(
                    spec.name, spec.doc, spec.labels, registry=registry, multiprocess_mode="livemax"
                )
            self._metrics[spec.name] = metric
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _child(self, metric: str, labels: tuple[str, ...]) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics[metric].labels(*labels)
        return child

    def inc(self, metric: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to a counter."""
        self._child(metric, labels).inc(amount)

    def set(self, metric: str, labels: tuple[str, ...], value: float) -> None:
        """Set a gauge."""
        self._child(metric, labels).set(value)

    def observe(self, metric: str, labels: tuple[str, ...], value: float) -> None:
        """Record one histogram observation."""
        self._child(metric, labels).observe(value)
