"""Plots of a `MetricsHistory`: latency, who served, breaker states, retries and fallbacks.

Needs matplotlib: ``pip install 'reliable-llm[plot]'``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from reliable_llm._breaker import BreakerState
from reliable_llm._errors import ConfigurationError
from reliable_llm._history import MetricsHistory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_history"]

STATE_COLORS = {
    BreakerState.CLOSED: "#4caf50",
    BreakerState.HALF_OPEN: "#ff9800",
    BreakerState.OPEN: "#f44336",
}
FAILED_COLOR = "#212121"


_FIGURE_CLASSES: dict[type, Any] = {}


def _figure_class() -> Any:
    """A matplotlib ``Figure`` that Jupyter displays as an image with no magic.

    A bare ``Figure`` (not made by pyplot) only shows as an image once ``%matplotlib inline``
    has registered a formatter for it; otherwise its text repr is all a fresh kernel shows.
    ``_repr_png_`` is IPython's own protocol for that, and a registered formatter still wins.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigurationError(
            "plotting needs matplotlib; install it with: pip install 'reliable-llm[plot]'"
        ) from exc
    if Figure in _FIGURE_CLASSES:
        return _FIGURE_CLASSES[Figure]

    class HistoryFigure(Figure):
        """A ``Figure`` that renders itself as PNG for Jupyter."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=96)
            return buffer.getvalue()

    _FIGURE_CLASSES[Figure] = HistoryFigure
    return HistoryFigure


def _state_spans(
    history: MetricsHistory, end: float
) -> dict[str, list[tuple[float, float, BreakerState]]]:
    spans: dict[str, list[tuple[float, float, BreakerState]]] = {}
    current = {m: (0.0, BreakerState.CLOSED) for m in history.models}
    for record in history.states:
        start, state = current.get(record.model, (0.0, BreakerState.CLOSED))
        spans.setdefault(record.model, []).append((start, record.time, state))
        current[record.model] = (record.time, record.state)
    for model, (start, state) in current.items():
        spans.setdefault(model, []).append((start, max(end, start), state))
    return spans


def plot_history(history: MetricsHistory, *, bucket: float = 60.0) -> Figure:
    """Draw the history as three stacked panels sharing the time axis.

    1. Latency of every request, coloured by the model that served it (failures in black,
       cache hits as hollow circles).
    2. Each model's breaker state over time (green closed, amber half-open, red open).
    3. Retries and fallbacks per ``bucket`` seconds.

    Args:
        history: What to plot.
        bucket: Width in seconds of the retry/fallback bars.

    Returns:
        A matplotlib ``Figure``; as the last expression of a Jupyter cell it displays as an
        image, with or without ``%matplotlib inline``.

    Raises:
        ConfigurationError: matplotlib is not installed, or ``bucket`` is not positive.
    """
    if bucket <= 0:
        raise ConfigurationError(f"bucket must be seconds > 0, got {bucket!r}")
    figure = _figure_class()(figsize=(10, 7.5), layout="constrained")
    latency_ax, state_ax, count_ax = figure.subplots(3, 1, sharex=True, height_ratios=[3, 1.2, 1.5])
    end = max([history.now(), *(r.time for r in history.requests)])

    served = sorted({r.served_by for r in history.requests if r.served_by is not None})
    palette = ["#1f77b4", "#9467bd", "#17becf", "#e377c2", "#bcbd22", "#8c564b"]
    for index, model in enumerate(served):
        color = palette[index % len(palette)]
        live = [r for r in history.requests if r.served_by == model and not r.cached]
        hits = [r for r in history.requests if r.served_by == model and r.cached]
        latency_ax.scatter(
            [r.time for r in live],
            [r.latency * 1000 for r in live],
            s=12,
            color=color,
            label=f"served by {model}",
        )
        if hits:
            latency_ax.scatter(
                [r.time for r in hits],
                [r.latency * 1000 for r in hits],
                s=18,
                facecolors="none",
                edgecolors=color,
                label=f"{model} (cache hit)",
            )
    failed = [r for r in history.requests if r.served_by is None]
    if failed:
        latency_ax.scatter(
            [r.time for r in failed],
            [r.latency * 1000 for r in failed],
            s=22,
            marker="x",
            color=FAILED_COLOR,
            label="failed",
        )
    latency_ax.set_ylabel("latency (ms)")
    latency_ax.set_title("Requests: latency and the model that served each one")
    if served or failed:
        latency_ax.legend(loc="upper right", fontsize="small")

    spans = _state_spans(history, end)
    models = list(spans)
    for row, model in enumerate(models):
        for start, stop, state in spans[model]:
            state_ax.broken_barh(
                [(start, max(stop - start, 1e-9))], (row - 0.4, 0.8), color=STATE_COLORS[state]
            )
    state_ax.set_yticks(range(len(models)), models)
    state_ax.set_title("Circuit breakers (green closed, amber half-open, red open)")

    edges = [i * bucket for i in range(int(end // bucket) + 2)]
    retries = [sum(lo <= t < lo + bucket for t in history.retries) for lo in edges[:-1]]
    fallbacks = [sum(lo <= f[0] < lo + bucket for f in history.fallbacks) for lo in edges[:-1]]
    width = bucket * 0.4
    count_ax.bar(
        [e + bucket * 0.3 for e in edges[:-1]],
        retries,
        width=width,
        color="#ff9800",
        label="retries",
    )
    count_ax.bar(
        [e + bucket * 0.7 for e in edges[:-1]],
        fallbacks,
        width=width,
        color="#f44336",
        label="fallbacks",
    )
    count_ax.set_ylabel(f"per {bucket:g} s")
    count_ax.set_xlabel("time (s)")
    count_ax.legend(loc="upper right", fontsize="small")
    return figure  # type: ignore[no-any-return]
