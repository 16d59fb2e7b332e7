"""Provider overhead and throughput: the manager over `OpenAIProvider` vs the bare ``openai`` SDK.

Both sides talk to the same local `FakeLLMServer` in the same run, with caching off, so the
ratios isolate what reliable-llm adds (request building, breaker, retry bookkeeping, metrics,
response translation). Calls (or batches) alternate between the two sides and each side's
median counts, so machine noise and drift hit both alike.

Ratios (``run()`` returns them as ``(name, value)`` pairs):
    sync_overhead: median manager ``chat`` latency / median bare SDK latency (target <= 1.05).
    async_overhead: the same for ``achat`` (target <= 1.05).
    async_throughput_100: manager throughput / bare ``AsyncOpenAI`` throughput with 100
        concurrent requests (target >= 0.95).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import openai

from reliable_llm import LLMManager
from reliable_llm.providers import OpenAIProvider
from reliable_llm.testing.fake_server import FakeLLMServer

MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Say ok."}]
SEQUENTIAL_PAIRS = 400
CONCURRENCY = 100
CONCURRENT_PAIRS = 20
WARMUP = 30
TARGETS = {"sync_overhead": "<= 1.05", "async_overhead": "<= 1.05"}
TARGETS["async_throughput_100"] = ">= 0.95"


def _manager(provider: OpenAIProvider) -> LLMManager:
    manager = LLMManager(enable_caching=False)
    manager.register_model(MODEL, provider)
    return manager


def _alternate(bare: Callable[[], object], managed: Callable[[], object], pairs: int) -> float:
    """Median managed time / median bare time over alternating calls."""
    bare_times: list[float] = []
    managed_times: list[float] = []
    for i in range(pairs):
        # Alternate who goes first, so neither side always runs on a warmed-up connection.
        order = ((bare, bare_times), (managed, managed_times))
        for fn, times in order if i % 2 else order[::-1]:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return statistics.median(managed_times) / statistics.median(bare_times)


async def _aalternate(
    bare: Callable[[], Awaitable[object]], managed: Callable[[], Awaitable[object]], pairs: int
) -> float:
    """Async twin of `_alternate`."""
    bare_times: list[float] = []
    managed_times: list[float] = []
    for i in range(pairs):
        order = ((bare, bare_times), (managed, managed_times))
        for fn, times in order if i % 2 else order[::-1]:
            started = time.perf_counter()
            await fn()
            times.append(time.perf_counter() - started)
    return statistics.median(managed_times) / statistics.median(bare_times)


def _bench_sync(server: FakeLLMServer) -> float:
    bare = openai.OpenAI(api_key="sk-bench", base_url=server.openai_base_url, max_retries=0)
    provider = OpenAIProvider(MODEL, api_key="sk-bench", base_url=server.openai_base_url)
    manager = _manager(provider)

    def bare_call() -> object:
        return bare.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

    def managed_call() -> object:
        return manager.chat(MESSAGES)

    _alternate(bare_call, managed_call, WARMUP)
    ratio = _alternate(bare_call, managed_call, SEQUENTIAL_PAIRS)
    bare.close()
    provider.close()
    return ratio


async def _bench_async(server: FakeLLMServer) -> tuple[float, float]:
    bare = openai.AsyncOpenAI(api_key="sk-bench", base_url=server.openai_base_url, max_retries=0)
    provider = OpenAIProvider(MODEL, api_key="sk-bench", base_url=server.openai_base_url)
    manager = _manager(provider)

    async def bare_call() -> object:
        return await bare.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

    async def managed_call() -> object:
        return await manager.achat(MESSAGES)

    async def bare_batch() -> object:
        return await asyncio.gather(*(bare_call() for _ in range(CONCURRENCY)))

    async def managed_batch() -> object:
        return await asyncio.gather(*(managed_call() for _ in range(CONCURRENCY)))

    await _aalternate(bare_call, managed_call, WARMUP)
    await _aalternate(bare_batch, managed_batch, 2)
    overhead = await _aalternate(bare_call, managed_call, SEQUENTIAL_PAIRS)
    # Same work per batch, so throughput ratio = bare batch time / managed batch time.
    throughput = 1.0 / await _aalternate(bare_batch, managed_batch, CONCURRENT_PAIRS)
    await bare.close()
    await provider.aclose()
    return overhead, throughput


def run() -> list[tuple[str, float]]:
    """Measure and return ``[(name, ratio), ...]`` (see the module docstring)."""
    with FakeLLMServer() as server:
        sync_overhead = _bench_sync(server)
        async_overhead, async_throughput = asyncio.run(_bench_async(server))
    return [
        ("sync_overhead", sync_overhead),
        ("async_overhead", async_overhead),
        ("async_throughput_100", async_throughput),
    ]


if __name__ == "__main__":
    for name, value in run():
        print(f"{name:24s} {value:6.3f}x   (target {TARGETS[name]})")
