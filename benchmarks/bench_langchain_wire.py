"""`ReliableChatModel` over our `OpenAIProvider` vs LangChain's `ChatOpenAI`, same fake server.

Both chat models call the same local `FakeLLMServer` (a child process) in the same run, with
caching off; blocks and concurrent batches alternate and each side's best counts, as in
``bench_providers``. Ratios are ReliableChatModel time / ChatOpenAI time: at most 1.0 means
at least as fast.
"""

from __future__ import annotations

import asyncio

from bench_providers import (
    BATCH_PAIRS,
    BLOCK,
    BLOCK_PAIRS,
    CONCURRENCY,
    MODEL,
    WARMUP,
    _aalternate,
    _alternate,
    _fake_server,
)
from langchain_openai import ChatOpenAI
from langchain_reliable_llm import ReliableChatModel

from reliable_llm import LLMManager
from reliable_llm.providers import OpenAIProvider

SEQUENTIAL = "invoke latency, ReliableChatModel / ChatOpenAI (target <= 1.0)"
ASYNC = "ainvoke latency, ReliableChatModel / ChatOpenAI (target <= 1.0)"
CONCURRENT = "100 concurrent ainvoke, batch time ReliableChatModel / ChatOpenAI (target <= 1.0)"


def _models(base_url: str) -> tuple[ChatOpenAI, ReliableChatModel, OpenAIProvider]:
    theirs = ChatOpenAI(model=MODEL, api_key="sk-bench", base_url=base_url, max_retries=0)
    provider = OpenAIProvider(MODEL, api_key="sk-bench", base_url=base_url)
    manager = LLMManager(enable_caching=False)
    manager.register_model(MODEL, provider)
    return theirs, ReliableChatModel(manager=manager), provider


def _sequential(base_url: str) -> float:
    theirs, ours, provider = _models(base_url)

    def block(model: ChatOpenAI | ReliableChatModel) -> None:
        for _ in range(BLOCK):
            model.invoke("Say ok.")

    _alternate(lambda: block(theirs), lambda: block(ours), WARMUP)
    wall, _ = _alternate(lambda: block(theirs), lambda: block(ours), BLOCK_PAIRS)
    provider.close()
    return wall


async def _async(base_url: str) -> tuple[float, float]:
    theirs, ours, provider = _models(base_url)

    async def block(model: ChatOpenAI | ReliableChatModel) -> None:
        for _ in range(BLOCK):
            await model.ainvoke("Say ok.")

    async def batch(model: ChatOpenAI | ReliableChatModel) -> None:
        await asyncio.gather(*(model.ainvoke("Say ok.") for _ in range(CONCURRENCY)))

    await _aalternate(lambda: block(theirs), lambda: block(ours), WARMUP)
    await _aalternate(lambda: batch(theirs), lambda: batch(ours), WARMUP)
    sequential, _ = await _aalternate(lambda: block(theirs), lambda: block(ours), BLOCK_PAIRS)
    concurrent, _ = await _aalternate(lambda: batch(theirs), lambda: batch(ours), BATCH_PAIRS)
    await provider.aclose()
    return sequential, concurrent


def run() -> list[tuple[str, float]]:
    """Same-run ratios of ReliableChatModel to ChatOpenAI over the same fake server."""
    with _fake_server() as base_url:
        sequential = _sequential(base_url)
        async_latency, concurrent = asyncio.run(_async(base_url))
    return [(SEQUENTIAL, sequential), (ASYNC, async_latency), (CONCURRENT, concurrent)]


if __name__ == "__main__":
    for label, value in run():
        print(f"{label:80} {value:6.3f}x")
