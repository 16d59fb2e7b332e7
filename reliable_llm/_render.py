"""Plain-text rendering of a metrics snapshot, for terminals and logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["metrics_table"]


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
        f"{metrics['failed_requests']}, success rate {_pct(metrics['success_rate'])})",
        f"cache    {cache['hits']} hits / {cache['misses']} misses "
        f"(hit rate {_pct(cache['hit_rate'])}, {cache['size']} entries)",
        f"retries  {metrics['retries']}    fallbacks {fallbacks['total']} ({pairs})",
        f"latency  p50 {_ms(metrics['latency']['p50'])} ms, p95 {_ms(metrics['latency']['p95'])} "
        f"ms, p99 {_ms(metrics['latency']['p99'])} ms    tokens {metrics['tokens']['total']}",
        "(* active model)",
    ]
    return "\n".join(lines)
