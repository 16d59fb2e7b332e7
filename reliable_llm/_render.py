"""Plain-text rendering of a metrics snapshot, for terminals and logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["MetricsSnapshot", "metrics_html", "metrics_table"]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """Render `LLMManager.get_metrics()` output as an aligned text table."""
    rows = [
        [
            name + (" *" if name == metrics.get("active_model") else ""),
            m["breaker_state"],
            str(m["attempts"]),
            str(m["success_count"]),
            str(m["failure_count"]),
            str(m["retries"]),
            str(m["requests_served"]),
            _ms(m["latency"]["p50"]),
            _ms(m["latency"]["p95"]),
        ]
        for name, m in metrics["models"].items()
    ]
    lines = _table(
        ["model", "breaker", "calls", "ok", "failed", "retries", "served", "p50 ms", "p95 ms"],
        rows,
    )
    cache = metrics["cache"]
    fallbacks = metrics["fallbacks"]
    pairs = ", ".join(f"{k}: {v}" for k, v in fallbacks["by_pair"].items()) or "none"
    lines += [
        "",
        f"requests {metrics['total_requests']} (ok {metrics['successful_requests']}, failed "
        f"{metrics['failed_requests']}, cancelled {metrics['cancelled_requests']}, "
        f"success rate {_pct(metrics['success_rate'])})",
        f"cache    {cache['hits']} hits / {cache['misses']} misses "
        f"(hit rate {_pct(cache['hit_rate'])}, {cache['size']} entries)",
        f"retries  {metrics['retries']}    fallbacks {fallbacks['total']} ({pairs})",
        f"latency  p50 {_ms(metrics['latency']['p50'])} ms, p95 {_ms(metrics['latency']['p95'])} "
        f"ms, p99 {_ms(metrics['latency']['p99'])} ms    tokens {metrics['tokens']['total']}",
        "(* active model)",
    ]
    return "\n".join(lines)


_STATE_STYLE = {
    "closed": "background:#e8f5e9;color:#1b5e20",
    "half-open": "background:#fff3e0;color:#e65100",
    "open": "background:#ffebee;color:#b71c1c;font-weight:bold",
}


def metrics_html(metrics: Mapping[str, Any]) -> str:
    """Render `LLMManager.get_metrics()` output as an HTML summary for Jupyter."""
    # Text columns (model, breaker) align left, numbers right: each header as its column.
    cell = "padding:2px 8px;text-align:right"
    text_cell = "padding:2px 8px;text-align:left"
    head = "".join(
        f"<th style='{text_cell if h in ('model', 'breaker') else cell}'>{h}</th>"
        for h in (
            "model",
            "breaker",
            "calls",
            "ok",
            "failed",
            "retries",
            "served",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        )
    )
    body = []
    for name, m in metrics["models"].items():
        state = m["breaker_state"]
        active = " <b>(active)</b>" if name == metrics.get("active_model") else ""
        values = [
            m["attempts"],
            m["success_count"],
            m["failure_count"],
            m["retries"],
            m["requests_served"],
            _ms(m["latency"]["p50"]),
            _ms(m["latency"]["p95"]),
            _ms(m["latency"]["p99"]),
        ]
        body.append(
            f"<tr><td style='{text_cell}'>{escape(name)}{active}</td>"
            f"<td style='{text_cell};{_STATE_STYLE.get(state, '')}'>{escape(state)}</td>"
            + "".join(f"<td style='{cell}'>{v}</td>" for v in values)
            + "</tr>"
        )
    cache, fallbacks, latency = metrics["cache"], metrics["fallbacks"], metrics["latency"]
    pairs = ", ".join(f"{escape(k)}: {v}" for k, v in fallbacks["by_pair"].items()) or "none"
    chain = " → ".join(
        escape(m)
        for m in [metrics.get("active_model") or "", *metrics.get("fallback_chain", [])]
        if m
    )
    return (
        "<div class='reliable-llm-metrics'>"
        f"<p><b>reliable-llm</b> — route: {chain or '(no model)'}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "<ul>"
        f"<li>requests: {metrics['total_requests']} (ok {metrics['successful_requests']}, failed "
        f"{metrics['failed_requests']}, cancelled {metrics['cancelled_requests']}, "
        f"success rate {_pct(metrics['success_rate'])})</li>"
        f"<li>cache: {cache['hits']} hits / {cache['misses']} misses, hit rate "
        f"{_pct(cache['hit_rate'])}, {cache['size']} entries</li>"
        f"<li>retries: {metrics['retries']}; fallbacks: {fallbacks['total']} ({pairs})</li>"
        f"<li>latency: p50 {_ms(latency['p50'])} ms, p95 {_ms(latency['p95'])} ms, "
        f"p99 {_ms(latency['p99'])} ms; tokens: {metrics['tokens']['total']}</li>"
        "</ul></div>"
    )


class MetricsSnapshot(dict[str, Any]):
    """The dict returned by `LLMManager.get_metrics`, which also renders itself.

    In Jupyter it displays as an HTML summary; ``snapshot.table()`` is the text version.
    """

    def table(self) -> str:
        """The snapshot as an aligned text table."""
        return metrics_table(self)

    def _repr_html_(self) -> str:
        return metrics_html(self)
