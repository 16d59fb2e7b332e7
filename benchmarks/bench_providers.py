"""Provider overhead and throughput: the manager over `OpenAIProvider` vs the bare ``openai`` SDK.

Both sides talk to the same local `FakeLLMServer` in the same run, with caching off, so the
ratios isolate what reliable-llm adds (request building, breaker, retry bookkeeping, metrics,
response translation). Blocks of calls (or concurrent batches) alternate between the two
sides and each side's best block counts, as in ``bench_core``, so load spikes on a shared
machine hit both alike and drop out. The server runs in a child process: in-process, its
thread would compete with the client for the GIL and blur the comparison.

Ratios (``run()`` returns them as ``(label, value)`` pairs):
    sync latency: manager ``chat`` time / bare SDK time per call (target <= 1.05).
    async latency: the same for ``achat`` (target <= 1.05).
    throughput: manager throughput / bare ``AsyncOpenAI`` throughput with 100 concurrent
        requests (target >= 0.95).
    client CPU: the same comparisons in CPU seconds of this process (the server is a child
        process), which machine load disturbs far less than wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import openai

from reliable_llm import LLMManager
from reliable_llm.providers import OpenAIProvider

MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Say ok."}]
BLOCK = 20
BLOCK_PAIRS = 25
CONCURRENCY = 100
BATCH_PAIRS = 20
WARMUP = 2
SYNC = "sync chat latency, manager / bare openai.OpenAI (target <= 1.05)"
ASYNC = "async achat latency, manager / bare openai.AsyncOpenAI (target <= 1.05)"
THROUGHPUT = "throughput at 100 concurrent, manager / bare AsyncOpenAI (target >= 0.95)"
SYNC_CPU = "sync chat client CPU, manager / bare"
ASYNC_CPU = "async achat client CPU, manager / bare"
THROUGHPUT_CPU = "client CPU at 100 concurrent, manager / bare"


def _manager(provider: OpenAIProvider) -> LLMManager:
    manager = LLMManager(enable_caching=False)
    manager.register_model(MODEL, provider)
    return manager


class _Timings:
    """Wall and client-CPU seconds of alternating blocks; ratios of the best blocks."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {"bare": [], "managed": []}
        self.cpu: dict[str, list[float]] = {"bare": [], "managed": []}

    def add(self, side: str, wall: float, cpu: float) -> None:
        self.wall[side].append(wall)
        self.cpu[side].append(cpu)

    def ratios(self) -> tuple[float, float]:
        """(managed / bare wall time, managed / bare client CPU time), best blocks."""
        wall = min(self.wall["managed"]) / min(self.wall["bare"])
        cpu = min(self.cpu["managed"]) / min(self.cpu["bare"])
        return wall, cpu


def _order(i: int) -> tuple[str, str]:
    # Alternate who goes first, so neither side always follows the other.
    return ("bare", "managed") if i % 2 else ("managed", "bare")


def _alternate(
    bare: Callable[[], object], managed: Callable[[], object], pairs: int
) -> tuple[float, float]:
    """Wall and CPU ratios of alternating blocks (see `_Timings.ratios`)."""
    sides = {"bare": bare, "managed": managed}
    timings = _Timings()
    for i in range(pairs):
        for side in _order(i):
            wall, cpu = time.perf_counter(), time.process_time()
            sides[side]()
            timings.add(side, time.perf_counter() - wall, time.process_time() - cpu)
    return timings.ratios()


async def _aalternate(
    bare: Callable[[], Awaitable[object]], managed: Callable[[], Awaitable[object]], pairs: int
) -> tuple[float, float]:
    """Async twin of `_alternate`."""
    sides = {"bare": bare, "managed": managed}
    timings = _Timings()
    for i in range(pairs):
        for side in _order(i):
            wall, cpu = time.perf_counter(), time.process_time()
            await sides[side]()
            timings.add(side, time.perf_counter() - wall, time.process_time() - cpu)
    return timings.ratios()


@contextlib.contextmanager
def _fake_server() -> Iterator[str]:
    """Run the fake server in a child process; yield its OpenAI base URL."""
    command = [sys.executable, "-m", "reliable_llm.testing.fake_server", "--reply", "ok"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip() + "/v1"
    finally:
        child.terminate()
        child.wait(timeout=10)


def _bench_sync(base_url: str) -> tuple[float, float]:
    bare = openai.OpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    provider = OpenAIProvider(MODEL, api_key="sk-bench", base_url=base_url)
    manager = _manager(provider)

    def bare_block() -> None:
        for _ in range(BLOCK):
            bare.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

    def managed_block() -> None:
        for _ in range(BLOCK):
            manager.chat(MESSAGES)

    _alternate(bare_block, managed_block, WARMUP)
    ratios = _alternate(bare_block, managed_block, BLOCK_PAIRS)
    bare.close()
    provider.close()
    return ratios


async def _bench_async(base_url: str) -> tuple[tuple[float, float], tuple[float, float]]:
    bare = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    provider = OpenAIProvider(MODEL, api_key="sk-bench", base_url=base_url)
    manager = _manager(provider)

    async def bare_call() -> object:
        return await bare.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

    async def managed_call() -> object:
        return await manager.achat(MESSAGES)

    async def bare_block() -> None:
        for _ in range(BLOCK):
            await bare_call()

    async def managed_block() -> None:
        for _ in range(BLOCK):
            await managed_call()

    async def bare_batch() -> object:
        return await asyncio.gather(*(bare_call() for _ in range(CONCURRENCY)))

    async def managed_batch() -> object:
        return await asyncio.gather(*(managed_call() for _ in range(CONCURRENCY)))

    await _aalternate(bare_block, managed_block, WARMUP)
    await _aalternate(bare_batch, managed_batch, WARMUP)
    sequential = await _aalternate(bare_block, managed_block, BLOCK_PAIRS)
    concurrent = await _aalternate(bare_batch, managed_batch, BATCH_PAIRS)
    await bare.close()
    await provider.aclose()
    return sequential, concurrent


def run() -> list[tuple[str, float]]:
    """Measure and return ``[(name, ratio), ...]`` (see the module docstring)."""
    with _fake_server() as base_url:
        sync_wall, sync_cpu = _bench_sync(base_url)
        (async_wall, async_cpu), (batch_wall, batch_cpu) = asyncio.run(_bench_async(base_url))
    return [
        (SYNC, sync_wall),
        (SYNC_CPU, sync_cpu),
        (ASYNC, async_wall),
        (ASYNC_CPU, async_cpu),
        # Same work per batch, so throughput ratio = bare batch time / managed batch time.
        (THROUGHPUT, 1.0 / batch_wall),
        (THROUGHPUT_CPU, batch_cpu),
    ]


if __name__ == "__main__":
    for label, value in run():
        print(f"{label:76} {value:6.3f}x")
