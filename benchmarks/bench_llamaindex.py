"""Overhead of `ReliableLLM` over LlamaIndex's own `MockLLM`, as same-run ratios.

Both LLMs answer instantly in process and both go through LlamaIndex's callback and
instrumentation decorators, so the ratios measure what the reliability layer (request
building, message conversion, breaker, retry bookkeeping, cache, metrics, event bridge)
adds to a LlamaIndex ``complete`` / ``achat``. A ratio of 1.10 means 10% longer.

Run: ``python benchmarks/bench_llamaindex.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import MockLLM
from llama_index.llms.reliable import ReliableLLM

from reliable_llm import ChatRequest, ChatResponse, LLMManager, Provider, Usage

_PROMPT = "The quick brown fox jumps over the lazy dog."
_MESSAGES = [ChatMessage(role=MessageRole.USER, content=_PROMPT)]


class _EchoModel(Provider):
    """Answers every request at once with its last message, as MockLLM echoes its prompt.

    In process and without I/O, it cannot outlive a timeout, so it says so
    (``enforces_timeout``) and is called in the caller's thread, as a user's in-process model
    that declares it is (and as ``bench_core`` calls its models).
    """

    provider_name = "echo"
    enforces_timeout = True

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        return ChatResponse(text=request.messages[-1].content, usage=Usage(9, 9))

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        return self.complete(request)


class _BoundedEchoModel(_EchoModel):
    """The same model without the declaration: each call crosses to a worker thread."""

    enforces_timeout = False


def _reliable(*, caching: bool, bounded: bool = False) -> ReliableLLM:
    manager = LLMManager(enable_caching=caching)
    manager.register_model("echo", _BoundedEchoModel() if bounded else _EchoModel())
    return ReliableLLM(manager=manager)


def _per_call(call: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def _ratio(
    candidate: Callable[[], object], baseline: Callable[[], object], calls: int, rounds: int
) -> float:
    """Median of per-round ratios; rounds interleave the two so drift hits both alike."""
    for _ in range(50):
        candidate()
        baseline()
    ratios = []
    for _ in range(rounds):
        base = _per_call(baseline, calls)
        ratios.append(_per_call(candidate, calls) / base)
    return statistics.median(ratios)


async def _aper_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls


async def _aratio(
    candidate: Callable[[], Awaitable[object]],
    baseline: Callable[[], Awaitable[object]],
    calls: int,
    rounds: int,
) -> float:
    """Async twin of `_ratio`, on one event loop."""
    for _ in range(50):
        await candidate()
        await baseline()
    ratios = []
    for _ in range(rounds):
        base = await _aper_call(baseline, calls)
        ratios.append(await _aper_call(candidate, calls) / base)
    return statistics.median(ratios)


def run(calls: int = 300, rounds: int = 7) -> list[tuple[str, float]]:
    """Same-run ratios of `ReliableLLM` ``complete`` / ``achat`` to `MockLLM`'s."""
    mock = MockLLM()
    uncached = _reliable(caching=False)
    cached = _reliable(caching=True)
    bounded = _reliable(caching=False, bounded=True)
    rows = [
        (
            "llama-index chat, uncached / MockLLM (target <= 0.77)",
            _ratio(lambda: uncached.chat(_MESSAGES), lambda: mock.chat(_MESSAGES), calls, rounds),
        ),
        (
            "llama-index complete, uncached / MockLLM (target <= 1.25)",
            _ratio(
                lambda: uncached.complete(_PROMPT), lambda: mock.complete(_PROMPT), calls, rounds
            ),
        ),
        (
            "llama-index complete, cache hit / MockLLM",
            _ratio(lambda: cached.complete(_PROMPT), lambda: mock.complete(_PROMPT), calls, rounds),
        ),
        (
            "llama-index complete, model without enforces_timeout (thread hand-off) / MockLLM",
            _ratio(
                lambda: bounded.complete(_PROMPT), lambda: mock.complete(_PROMPT), calls, rounds
            ),
        ),
    ]
    rows.append(
        (
            "llama-index achat, uncached / MockLLM",
            asyncio.run(
                _aratio(
                    lambda: uncached.achat(_MESSAGES), lambda: mock.achat(_MESSAGES), calls, rounds
                )
            ),
        )
    )
    rows.append(
        (
            "llama-index achat, cache hit / MockLLM",
            asyncio.run(
                _aratio(
                    lambda: cached.achat(_MESSAGES), lambda: mock.achat(_MESSAGES), calls, rounds
                )
            ),
        )
    )
    return rows


if __name__ == "__main__":
    for name, ratio in run():
        print(f"{name:55s} {ratio:6.2f}x")
