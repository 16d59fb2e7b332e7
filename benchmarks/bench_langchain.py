"""Overhead of `ReliableChatModel` over LangChain's own fake chat model, as same-run ratios.

Both models answer instantly in process, so the ratios measure what the reliability layer
(request building, breaker, retry bookkeeping, cache, metrics, metadata) adds to a LangChain
``invoke``. A ratio of 1.10 means the reliable model's invoke takes 10% longer.

Run: ``python benchmarks/bench_langchain.py``.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langchain_reliable_llm import ReliableChatModel

from reliable_llm import ChatRequest, ChatResponse, Provider, ServerError, Usage

_ANSWER = "The quick brown fox jumps over the lazy dog."


class _InstantModel(Provider):
    """Answers every request at once with the same text and usage.

    In process and without I/O, it cannot outlive a timeout, so it says so
    (``enforces_timeout``) and is called in the caller's thread, as a user's in-process model
    that declares it is (and as ``bench_core`` calls its models).
    """

    provider_name = "instant"
    enforces_timeout = True

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        return ChatResponse(text=_ANSWER, usage=Usage(5, 9))

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        return self.complete(request)


class _DownModel(Provider):
    """Fails every request at once with a 503."""

    provider_name = "down"
    enforces_timeout = True  # in process, as _InstantModel

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        raise ServerError("service unavailable", status_code=503)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        return self.complete(request)


def _reliable(*, caching: bool) -> ReliableChatModel:
    """Two models, the second a fallback for the first, as a user configures them."""
    return ReliableChatModel(
        models={"primary": _InstantModel(), "backup": _InstantModel()}, enable_caching=caching
    )


class _BoundedModel(_InstantModel):
    """The same model without the declaration: each call crosses to a worker thread."""

    enforces_timeout = False


def _reliable_bounded() -> ReliableChatModel:
    return ReliableChatModel(
        models={"primary": _BoundedModel(), "backup": _BoundedModel()}, enable_caching=False
    )


def _reliable_primary_down() -> ReliableChatModel:
    # Retries off, as with_fallbacks does not retry; a breaker that never opens, so every
    # call really tries the primary first.
    return ReliableChatModel(
        models={"primary": _DownModel(), "backup": _InstantModel()},
        max_retries=0,
        enable_caching=False,
        failure_threshold=10**9,
    )


def _baseline() -> GenericFakeChatModel:
    message = AIMessage(
        _ANSWER, usage_metadata={"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}
    )
    return GenericFakeChatModel(messages=itertools.repeat(message))


class _DownChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, failing every call as a provider outage would."""

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("service unavailable")


def _baseline_primary_down() -> Runnable[Any, Any]:
    return _DownChatModel(messages=iter(())).with_fallbacks([_baseline()])


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


def run(calls: int = 300, rounds: int = 7) -> list[tuple[str, float]]:
    """Same-run ratios of ``ReliableChatModel.invoke`` to LangChain's own fakes."""
    baseline = _baseline()
    uncached = _reliable(caching=False)
    cached = _reliable(caching=True)
    down = _reliable_primary_down()
    down_baseline = _baseline_primary_down()
    bounded = _reliable_bounded()
    return [
        (
            "langchain invoke, fallback configured / GenericFakeChatModel (target <= 1.20)",
            _ratio(
                lambda: uncached.invoke("Hello"), lambda: baseline.invoke("Hello"), calls, rounds
            ),
        ),
        (
            "langchain invoke, cache hit / GenericFakeChatModel",
            _ratio(lambda: cached.invoke("Hello"), lambda: baseline.invoke("Hello"), calls, rounds),
        ),
        (
            "langchain invoke, primary raises / with_fallbacks (target <= 0.50)",
            _ratio(
                lambda: down.invoke("Hello"), lambda: down_baseline.invoke("Hello"), calls, rounds
            ),
        ),
        (
            "langchain invoke, model without enforces_timeout (thread hand-off) / GenericFake",
            _ratio(
                lambda: bounded.invoke("Hello"), lambda: baseline.invoke("Hello"), calls, rounds
            ),
        ),
    ]


if __name__ == "__main__":
    for name, ratio in run():
        print(f"{name:55s} {ratio:6.2f}x")
