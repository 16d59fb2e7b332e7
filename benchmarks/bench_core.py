"""Overhead of the core manager over calling the same in-process model directly.

Every figure is measured against a baseline in the same run (best of several repeats), so a
noisy shared machine moves both sides alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable

from reliable_llm import (
    BreakerPolicy,
    CacheControl,
    CallableProvider,
    ChatRequest,
    Deployment,
    ImagePart,
    LLMManager,
    Message,
    RetryPolicy,
    ServerError,
    TextPart,
    cache_key,
)
from reliable_llm.testing import ScriptedModel

REPEATS = 7
N = 20_000


def _per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _compare(
    baseline: Callable[[], object], subject: Callable[[], object], n: int = N
) -> tuple[float, float]:
    """Best seconds per call of each, timed in alternation so load changes hit both alike."""
    best_base = best_subject = float("inf")
    for _ in range(REPEATS):
        best_base = min(best_base, _per_call(baseline, n))
        best_subject = min(best_subject, _per_call(subject, n))
    return best_base, best_subject


def _model(prompt: str, **kwargs: object) -> str:
    return "ok"


def _failing(prompt: str, **kwargs: object) -> str:
    raise ServerError("down")


def _direct_with_exception() -> str:
    try:  # noqa: SIM105 - the baseline is the plain try/except a user would write
        _failing("hi")
    except ServerError:
        pass
    return _model("hi")


def _manager(**kwargs: object) -> LLMManager:
    return LLMManager(max_retries=0, **kwargs)  # type: ignore[arg-type]


def _inline(fn: Callable[..., str]) -> CallableProvider:
    """An in-process function that vouches for its speed: called in the caller's thread."""
    return CallableProvider(fn, enforces_timeout=True)


def bench_sync() -> list[tuple[str, float, float, float | None]]:
    """(name, baseline µs, manager µs, budget µs or None) for the per-call paths.

    The budgeted rows measure the manager's own path, with models called in the caller's
    thread. The last rows show what the wall-clock bound of a plain sync callable costs on
    top (its call runs in a worker thread the manager can stop waiting for).
    """

    def direct() -> str:
        return _model("hi")

    rows: list[tuple[str, float, float, float | None]] = []
    plain = _manager(enable_caching=False)
    plain.register_model("m", _inline(_model))
    rows.append(("success, caching off", *_compare(direct, lambda: plain.generate("hi")), 15))

    cached = _manager()
    cached.register_model("m", _inline(_model))
    cached.generate("hi")
    rows.append(("cache hit", *_compare(direct, lambda: cached.generate("hi")), 5))

    failover = _manager(enable_caching=False, breaker=BreakerPolicy(failure_threshold=10**9))
    failover.register_model("primary", _inline(_failing))
    failover.register_model("backup", _inline(_model))
    failover.set_fallback_chain(["backup"])
    rows.append(
        (
            "primary raises, fallback serves",
            *_compare(_direct_with_exception, lambda: failover.generate("hi")),
            30,
        )
    )

    tripped = _manager(enable_caching=False, breaker=BreakerPolicy(1, recovery_timeout=1e9))
    tripped.register_model("primary", _inline(_failing))
    tripped.register_model("backup", _inline(_model))
    tripped.set_fallback_chain(["backup"])
    tripped.generate("trip")
    rows.append(
        ("breaker open, immediate fallback", *_compare(direct, lambda: tripped.generate("hi")), 10)
    )

    bounded = _manager(enable_caching=False)
    bounded.register_model("m", _model)
    rows.append(
        (
            "success, bounded sync callable",
            *_compare(direct, lambda: bounded.generate("hi"), 5000),
            None,
        )
    )
    return [(name, base * 1e6, managed * 1e6, budget) for name, base, managed, budget in rows]


def bench_routing() -> list[tuple[str, float, float, float | None]]:
    """(name, single model µs, 4-deployment group µs, budget µs) for deployment routing.

    The group has every routing feature on: weighted picks, requests- and tokens-per-minute
    limits (never reached) and a bulkhead on each deployment; the baseline is the same
    manager path with one plain model ("success, caching off").
    """
    single = _manager(enable_caching=False)
    single.register_model("m", _inline(_model))
    group = _manager(enable_caching=False)
    group.register_model(
        "m",
        [
            Deployment(
                _inline(_model),
                weight=w,
                rpm=10**9,
                tpm=10**12,
                max_concurrent_calls=1000,
            )
            for w in (1, 2, 3, 4)
        ],
    )
    base, routed = _compare(lambda: single.generate("hi"), lambda: group.generate("hi"))
    return [("4-deployment group, every feature on", base * 1e6, routed * 1e6, 3)]


def bench_observability() -> list[tuple[str, float, float, float | None]]:
    """(name, plain manager µs, instrumented manager µs, budget µs or None) per exporter.

    The baseline is the same manager path with nothing enabled ("success, caching off").
    The SDK row is reported, not budgeted: building and exporting spans is the SDK's work.
    """
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import NoOpTracerProvider
    from prometheus_client import CollectorRegistry

    import reliable_llm.otel
    import reliable_llm.prometheus

    def manager() -> LLMManager:
        made = _manager(enable_caching=False)
        made.register_model("m", _inline(_model))
        return made

    plain = manager()
    prometheus = manager()
    reliable_llm.prometheus.instrument(prometheus, registry=CollectorRegistry())
    noop = manager()
    reliable_llm.otel.instrument(
        noop, tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
    )
    sdk = manager()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reliable_llm.otel.instrument(
        sdk,
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
    )

    calls = iter(range(1 << 62))

    def sdk_call() -> object:
        if next(calls) % 1000 == 0:
            exporter.clear()  # keep memory flat; a real exporter ships spans away
        return sdk.generate("hi")

    rows: list[tuple[str, float, float, float | None]] = [
        (
            "Prometheus collector",
            *_compare(lambda: plain.generate("hi"), lambda: prometheus.generate("hi")),
            3,
        ),
        (
            "OTel, no-op providers",
            *_compare(lambda: plain.generate("hi"), lambda: noop.generate("hi")),
            3,
        ),
        (
            "OTel SDK, in-memory exporter",
            *_compare(lambda: plain.generate("hi"), sdk_call, 5000),
            None,
        ),
    ]
    return [(name, base * 1e6, managed * 1e6, budget) for name, base, managed, budget in rows]


def bench_content(n: int = N) -> list[tuple[str, float, float, float | None]]:
    """(name, baseline µs, subject µs, budget µs or None) for content parts.

    A text-only ``chat`` pays nothing for content parts (its budget is the text path's); a
    request with a 1 MB image pays one SHA-256 of the payload for its cache key, not a JSON
    dump of it; fitting an image request to each model is reported.
    """

    def direct() -> str:
        return _model("hi")

    rows: list[tuple[str, float, float, float | None]] = []
    text = _manager(enable_caching=False)
    text.register_model("m", _inline(_model))
    messages = [Message.system("be brief"), Message.user("hi")]
    rows.append(
        ("chat, text messages, caching off", *_compare(direct, lambda: text.chat(messages), n), 20)
    )

    image = ImagePart.from_bytes(b"\x89PNG" + bytes(range(256)) * 4096, "image/png")  # 1 MB
    data = image.data or ""
    request = ChatRequest((Message.user([TextPart("What is this?"), image]),))

    def one_hash() -> str:  # the payload's base64 text, as bytes, hashed once
        return hashlib.sha256(data.encode("ascii")).hexdigest()

    def fresh_key() -> str:
        object.__setattr__(image, "_digest", None)  # as a new part: its digest not yet known
        return cache_key("m", request)

    # 250 µs: far below what a second hash (~1.5 ms) or a JSON dump of the payload would add.
    rows.append(("1 MB image: cache key over one hash", *_compare(one_hash, fresh_key, 20), 250))

    fitted = LLMManager(max_retries=0, enable_caching=False)
    fitted.register_model("m", ScriptedModel(default="ok"))
    marked = [
        Message.system([TextPart("be brief", cache_control=CacheControl())]),
        Message.user([TextPart("What is this?"), ImagePart(url="https://example.com/a.png")]),
    ]
    plain = [Message.system("be brief"), Message.user("What is this?")]
    rows.append(
        (
            "chat with image + cache marker, fitted",
            *_compare(lambda: fitted.chat(plain), lambda: fitted.chat(marked), n // 4),
            None,
        )
    )
    return [(name, base * 1e6, managed * 1e6, budget) for name, base, managed, budget in rows]


def bench_breaker_rules(n: int = N) -> list[tuple[str, float, float, float | None]]:
    """(name, default-policy manager µs, opt-in-rules manager µs, budget µs) per path.

    The opt-in breaker rules (a failure-rate and slow-call window, a growing jittered open
    time, a panic threshold) and the retry budget, against the same path with the defaults.
    """
    rules = BreakerPolicy(
        failure_rate_threshold=50,
        minimum_number_of_calls=20,
        sliding_window_size=100,
        slow_call_duration_threshold=10.0,
        max_recovery_timeout=600,
        recovery_jitter=5,
        panic_threshold=50,
    )
    budget = RetryPolicy(max_retries=0, retry_budget_percent=20)

    plain = _manager(enable_caching=False)
    plain.register_model("m", _inline(_model))
    ruled = _manager(enable_caching=False, breaker=rules, retry=budget)
    ruled.register_model("m", _inline(_model))

    def tripped(policy: BreakerPolicy) -> LLMManager:
        made = _manager(enable_caching=False, breaker=policy)
        made.register_model("primary", _inline(_failing))
        made.register_model("backup", _inline(_model))
        made.set_fallback_chain(["backup"])
        made.generate("trip")
        return made

    # Half the route open: not a panic (50% closed is not below the 50% threshold).
    open_plain = tripped(BreakerPolicy(1, recovery_timeout=1e9))
    open_ruled = tripped(BreakerPolicy(1, recovery_timeout=1e9, panic_threshold=50))
    rows = [
        (
            "success, every rule and the budget on",
            *_compare(lambda: plain.generate("hi"), lambda: ruled.generate("hi"), n),
            3,
        ),
        (
            "breaker open, panic threshold set",
            *_compare(lambda: open_plain.generate("hi"), lambda: open_ruled.generate("hi"), n),
            1,
        ),
    ]
    return [(name, base * 1e6, managed * 1e6, limit) for name, base, managed, limit in rows]


async def _slow(prompt: str, **kwargs: object) -> str:
    await asyncio.sleep(0.05)
    return "ok"


def bench_concurrency(tasks: int = 1000) -> tuple[float, float]:
    """Seconds for `tasks` concurrent 50 ms calls: bare gather vs through the manager."""
    manager = LLMManager(enable_caching=False)
    manager.register_model("slow", _slow)

    async def bare() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(_slow(str(i)) for i in range(tasks)))
        return time.perf_counter() - start

    async def managed() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(manager.agenerate(str(i)) for i in range(tasks)))
        return time.perf_counter() - start

    base = through = float("inf")
    for _ in range(3):  # alternate, so load changes hit both alike
        base = min(base, asyncio.run(bare()))
        through = min(through, asyncio.run(managed()))
    return base, through


def bench_import(rounds: int = 10) -> tuple[float, float]:
    """Seconds to start Python bare, and to start it and import reliable_llm.

    The two are timed in alternation and the best of ``rounds`` of each counts. Bytecode is
    cached first, as an installed wheel has it: with ``PYTHONDONTWRITEBYTECODE`` set, every
    start would compile our sources again and time the compiler, not the import.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def timed(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - start

    timed("import reliable_llm")  # writes the bytecode cache
    bare = imported = float("inf")
    for _ in range(rounds):
        bare = min(bare, timed("pass"))
        imported = min(imported, timed("import reliable_llm"))
    return bare, imported


def main() -> None:
    """Print every core figure with its same-run baseline."""
    print("core: overhead of LLMManager.generate over calling the model function directly")
    print(f"  {'path':36} {'direct µs':>10} {'manager µs':>11} {'overhead µs':>12} {'budget':>7}")
    for name, base, managed, budget in bench_sync():
        overhead = managed - base
        if budget is None:
            print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f}   (thread hand-off)")
            continue
        verdict = "ok" if overhead <= budget else "OVER"
        print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f} {budget:>5} µs {verdict}")
    print("routing: a deployment group with every feature on, over a single model")
    print(f"  {'path':36} {'single µs':>10} {'group µs':>11} {'overhead µs':>12} {'budget':>7}")
    for name, base, managed, budget in bench_routing():
        overhead = managed - base
        verdict = "ok" if budget is None or overhead <= budget else "OVER"
        print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f} {budget:>5} µs {verdict}")
    print("content parts: text-only chat, and what a 1 MB image adds")
    for name, base, managed, budget in bench_content():
        overhead = managed - base
        if budget is None:
            print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f}   (reported)")
            continue
        verdict = "ok" if overhead <= budget else "OVER"
        print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f} {budget:>5} µs {verdict}")
    print("observability: the same call with an exporter enabled, over the plain manager")
    print(
        f"  {'exporter':36} {'plain µs':>10} {'enabled µs':>11} {'overhead µs':>12} {'budget':>7}"
    )
    for name, base, managed, budget in bench_observability():
        overhead = managed - base
        if budget is None:
            print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f}   (reported)")
            continue
        verdict = "ok" if overhead <= budget else "OVER"
        print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f} {budget:>5} µs {verdict}")
    print("breaker rules: the same call with the opt-in breaker rules on, over the defaults")
    print(f"  {'path':36} {'default µs':>10} {'rules µs':>11} {'overhead µs':>12} {'budget':>7}")
    for name, base, managed, budget in bench_breaker_rules():
        overhead = managed - base
        verdict = "ok" if budget is None or overhead <= budget else "OVER"
        print(f"  {name:36} {base:10.2f} {managed:11.2f} {overhead:12.2f} {budget:>5} µs {verdict}")
    base, through = bench_concurrency()
    print(
        f"  1,000 concurrent agenerate (50 ms model): bare gather {base * 1000:.0f} ms, "
        f"manager {through * 1000:.0f} ms, ratio {through / base:.3f}x (budget 1.20x)"
    )
    bare, imported = bench_import()
    print(
        f"  import reliable_llm: {(imported - bare) * 1000:.1f} ms over a bare interpreter start "
        f"({bare * 1000:.0f} ms; budget 100 ms)"
    )


if __name__ == "__main__":
    main()
