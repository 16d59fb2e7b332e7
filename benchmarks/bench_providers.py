"""Provider overhead, throughput and stream decoding, each against a baseline in the same run.

The manager over `OpenAIProvider` / `AnthropicProvider` is compared with the bare official SDK
client (default settings, retries off) talking to the same local `FakeLLMServer`, caching
off, so the ratios isolate what reliable-llm adds or saves. Blocks of calls (or concurrent
batches) alternate between the two sides and each side's best block counts, as in
``bench_core``, so load spikes on a shared machine hit both alike and drop out. The server
runs in a child process: in-process, its thread would compete with the client for the GIL.

Figures (``run()`` returns them as ``(label, value)`` pairs):
    sync latency: manager ``chat`` time / bare SDK time per call (target <= 1.05).
    async latency: the same for ``achat``.
    c100 throughput: requests per second with 100 concurrent ``achat`` calls, and its ratio
        to a bare default ``AsyncOpenAI`` / ``AsyncAnthropic`` (target >= 1.5: the async
        providers run on the SDKs' aiohttp-backed client when the extra is installed).
    per-chunk decode: today's stream decoder + accumulator / the pre-wire-work one
        (``_decode_baseline``, commit 59a0394) per chunk, text and tool-call streams of both
        protocols (target <= 1.10).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import _decode_baseline as before
import anthropic
import openai
from anthropic._models import construct_type as anthropic_construct
from anthropic.types import RawMessageStreamEvent
from openai._models import construct_type as openai_construct
from openai.types.chat import ChatCompletionChunk

from reliable_llm import LLMManager, StreamAccumulator
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers import _anthropic_wire as anthropic_wire
from reliable_llm.providers import _openai_wire as openai_wire
from reliable_llm.providers._base import SDKProvider

MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Say ok."}]
BLOCK = 20
BLOCK_PAIRS = 15
CONCURRENCY = 100
BATCH_PAIRS = 12
WARMUP = 2
DECODE_ROUNDS = 9
DECODE_REPEAT = 50
TRANSCRIPTS = Path(__file__).parent.parent / "tests" / "wire" / "transcripts"


def _manager(provider: SDKProvider) -> LLMManager:
    manager = LLMManager(enable_caching=False)
    manager.register_model(MODEL, provider)
    provider.warm()
    return manager


def _order(i: int) -> tuple[str, str]:
    # Alternate who goes first, so neither side always follows the other.
    return ("bare", "managed") if i % 2 else ("managed", "bare")


def _best(sides: dict[str, Callable[[], object]], pairs: int) -> dict[str, float]:
    best = {side: float("inf") for side in sides}
    for i in range(pairs):
        for side in _order(i):
            started = time.perf_counter()
            sides[side]()
            best[side] = min(best[side], time.perf_counter() - started)
    return best


async def _abest(sides: dict[str, Callable[[], Awaitable[object]]], pairs: int) -> dict[str, float]:
    best = {side: float("inf") for side in sides}
    for i in range(pairs):
        for side in _order(i):
            started = time.perf_counter()
            await sides[side]()
            best[side] = min(best[side], time.perf_counter() - started)
    return best


@contextlib.contextmanager
def _fake_server_root() -> Iterator[str]:
    """Run the fake server in a child process; yield its root URL."""
    command = [sys.executable, "-m", "reliable_llm.testing.fake_server", "--reply", "ok"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        child.terminate()
        child.wait(timeout=10)


# Shared with bench_langchain_wire: the OpenAI base URL of a child-process fake server, and
# alternating blocks returning (wall ratio, client-CPU ratio) of their best blocks.


@contextlib.contextmanager
def _fake_server() -> Iterator[str]:
    """Run the fake server in a child process; yield its OpenAI base URL."""
    with _fake_server_root() as root:
        yield root + "/v1"


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


class _Side:
    """One protocol: its bare SDK clients and its provider, pointed at the server."""

    def __init__(self, kind: str, root: str) -> None:
        self.kind = kind
        if kind == "openai":
            url = root + "/v1"
            self.bare: Any = openai.OpenAI(api_key="sk-bench", base_url=url, max_retries=0)
            self.abare: Any = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0)
            self.provider: SDKProvider = OpenAIProvider(MODEL, api_key="sk-bench", base_url=url)
        else:
            key = "sk-ant-bench"
            self.bare = anthropic.Anthropic(api_key=key, base_url=root, max_retries=0)
            self.abare = anthropic.AsyncAnthropic(api_key=key, base_url=root, max_retries=0)
            self.provider = AnthropicProvider(MODEL, api_key=key, base_url=root)
        self.manager = _manager(self.provider)

    def bare_call(self) -> object:
        if self.kind == "openai":
            return self.bare.chat.completions.create(model=MODEL, messages=MESSAGES)
        return self.bare.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)

    async def abare_call(self) -> object:
        if self.kind == "openai":
            return await self.abare.chat.completions.create(model=MODEL, messages=MESSAGES)
        return await self.abare.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)

    def sync_ratio(self) -> float:
        def bare() -> None:
            for _ in range(BLOCK):
                self.bare_call()

        def managed() -> None:
            for _ in range(BLOCK):
                self.manager.chat(MESSAGES)

        sides = {"bare": bare, "managed": managed}
        _best(sides, WARMUP)
        best = _best(sides, BLOCK_PAIRS)
        return best["managed"] / best["bare"]

    async def async_figures(self) -> tuple[float, float, float]:
        """(achat latency ratio, managed c100 req/s, bare c100 req/s)."""

        async def bare() -> None:
            for _ in range(BLOCK):
                await self.abare_call()

        async def managed() -> None:
            for _ in range(BLOCK):
                await self.manager.achat(MESSAGES)

        async def bare_batch() -> None:
            await asyncio.gather(*(self.abare_call() for _ in range(CONCURRENCY)))

        async def managed_batch() -> None:
            await asyncio.gather(*(self.manager.achat(MESSAGES) for _ in range(CONCURRENCY)))

        sequential = {"bare": bare, "managed": managed}
        batches = {"bare": bare_batch, "managed": managed_batch}
        await _abest(sequential, WARMUP)
        await _abest(batches, WARMUP)
        latency = await _abest(sequential, BLOCK_PAIRS)
        batch = await _abest(batches, BATCH_PAIRS)
        await self.abare.close()
        await self.provider.aclose()
        return (
            latency["managed"] / latency["bare"],
            CONCURRENCY / batch["managed"],
            CONCURRENCY / batch["bare"],
        )

    def close(self) -> None:
        self.bare.close()
        self.provider.close()


def _sse_data(name: str) -> list[dict[str, Any]]:
    text = (TRANSCRIPTS / name).read_text()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def _decode_streams() -> dict[str, tuple[str, list[Any]]]:
    """Long streams of each kind, built from corpus transcripts: (protocol, SDK events)."""
    chunks = _sse_data("openai_parallel_tools.sse")
    text = {**chunks[0], "choices": [{"index": 0, "delta": {"content": "tok "}}]}
    calls = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    start = next(c for c in calls if "id" in c["choices"][0]["delta"]["tool_calls"][0])
    # A fragment from inside the arguments, as most fragments are (not the opening "{").
    arguments = [c for c in calls if "id" not in c["choices"][0]["delta"]["tool_calls"][0]][2]
    openai_text = [chunks[0], *[text] * 200, *chunks[-2:]]
    openai_tools = [chunks[0], start, *[arguments] * 200, *chunks[-2:]]
    events = _sse_data("anthropic_tool_use.sse")
    text_delta = next(e for e in events if e.get("delta", {}).get("type") == "text_delta")
    json_delta = [e for e in events if e.get("delta", {}).get("type") == "input_json_delta"][2]
    anthropic_text = [*events[:3], *[text_delta] * 200, *events[-2:]]
    anthropic_tools = [*events[:9], *[json_delta] * 200, *events[-3:]]

    def as_openai(values: list[Any]) -> list[Any]:
        return [openai_construct(type_=ChatCompletionChunk, value=v) for v in values]

    def as_anthropic(values: list[Any]) -> list[Any]:
        return [anthropic_construct(type_=RawMessageStreamEvent, value=v) for v in values]

    return {
        "OpenAI text": ("openai", as_openai(openai_text)),
        "OpenAI tool-call": ("openai", as_openai(openai_tools)),
        "Anthropic text": ("anthropic", as_anthropic(anthropic_text)),
        "Anthropic tool-call": ("anthropic", as_anthropic(anthropic_tools)),
    }


def _decoder(protocol: str, today: bool) -> Callable[[list[Any]], object]:
    if protocol == "openai":
        state: Callable[[], Any] = (
            openai_wire.StreamState if today else before.OpenAIStreamState  # type: ignore[assignment]
        )
    else:
        state = (
            (lambda: anthropic_wire.StreamState(None))
            if today
            else (lambda: before.AnthropicStreamState(None))
        )
    accumulator = StreamAccumulator if today else before.StreamAccumulator

    def decode(events: list[Any]) -> object:
        folder, acc = state(), accumulator()
        for event in events:
            chunk = folder.feed(event)
            if chunk is not None:
                acc.add(chunk)
        acc.add(folder.closing_chunk())
        return acc.response()

    return decode


def _repeat(decode: Callable[[list[Any]], object], events: list[Any]) -> None:
    for _ in range(DECODE_REPEAT):
        decode(events)


def _decode_ratios() -> list[tuple[str, float]]:
    figures = []
    for name, (protocol, events) in _decode_streams().items():
        sides = {
            "managed": functools.partial(_repeat, _decoder(protocol, True), events),
            "bare": functools.partial(_repeat, _decoder(protocol, False), events),
        }
        best = _best(sides, DECODE_ROUNDS)
        per_chunk = best["managed"] / DECODE_REPEAT / len(events) * 1e6
        label = f"per-chunk decode, {name} stream, now / before (target <= 1.10)"
        figures.append((f"{label}; now {per_chunk:.2f} us/chunk", best["managed"] / best["bare"]))
    return figures


def run() -> list[tuple[str, float]]:
    """Measure and return ``[(name, value), ...]`` (see the module docstring)."""
    figures: list[tuple[str, float]] = []
    with _fake_server_root() as root:
        for kind, bare_name in (("openai", "OpenAI"), ("anthropic", "Anthropic")):
            side = _Side(kind, root)
            sync = side.sync_ratio()
            latency, managed_rps, bare_rps = asyncio.run(side.async_figures())
            side.close()
            figures += [
                (f"{kind}: sync chat latency, manager / bare {bare_name} (target <= 1.05)", sync),
                (f"{kind}: async achat latency, manager / bare Async{bare_name}", latency),
                (f"{kind}: c100 throughput, manager req/s", managed_rps),
                (f"{kind}: c100 throughput, bare default Async{bare_name} req/s", bare_rps),
                (
                    f"{kind}: c100 throughput, manager / bare Async{bare_name} (target >= 1.5)",
                    managed_rps / bare_rps,
                ),
            ]
    return figures + _decode_ratios()


if __name__ == "__main__":
    for label, value in run():
        print(f"{label:92} {value:9.3f}")
