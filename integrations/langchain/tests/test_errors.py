"""Failures surface as errors catchable both as reliable-llm and as LangChain errors."""

from __future__ import annotations

import pickle

import pytest
from langchain_core import exceptions as lc
from langchain_reliable_llm import (
    ReliableAPIError,
    ReliableAuthenticationError,
    ReliableChatModel,
    ReliableChatModelError,
    ReliableContextOverflowError,
    ReliableRateLimitError,
    ReliableStreamInterruptedError,
    ReliableTimeoutError,
)

from reliable_llm import (
    AllModelsFailedError,
    AuthenticationError,
    ContextWindowExceededError,
    LLMManager,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    TimeoutPolicy,
)
from reliable_llm.testing import FakeClock, ScriptedModel, StreamBreak


def _model(*steps: object, backup: object = None, **manager_kwargs: object) -> ReliableChatModel:
    manager = LLMManager(max_retries=1, clock=FakeClock(), **manager_kwargs)  # type: ignore[arg-type]
    manager.register_model("primary", ScriptedModel(steps, default=steps[-1]))  # type: ignore[arg-type]
    if backup is not None:
        manager.register_model("backup", ScriptedModel(default=backup))  # type: ignore[arg-type]
        manager.set_fallback_chain(["backup"])
    return ReliableChatModel(manager=manager)


@pytest.mark.parametrize(
    ("error", "ours", "theirs"),
    [
        (
            RateLimitError("slow down", status_code=429),
            ReliableRateLimitError,
            lc.ModelRateLimitError,
        ),
        (ServerError("boom", status_code=500), ReliableAPIError, lc.ModelAPIError),
        (
            AuthenticationError("bad key", status_code=401),
            ReliableAuthenticationError,
            lc.ModelAuthenticationError,
        ),
        (
            ContextWindowExceededError("too long", status_code=400),
            ReliableContextOverflowError,
            lc.ContextOverflowError,
        ),
    ],
)
def test_uniform_failures_raise_the_matching_langchain_class(
    error: ProviderError, ours: type[Exception], theirs: type[Exception]
) -> None:
    """When every model fails the same way, the error is also LangChain's class for it."""
    model = _model(error, backup=type(error)(error.message, status_code=error.status_code))
    with pytest.raises(ours) as caught:
        model.invoke("hi")
    exc = caught.value
    assert isinstance(exc, theirs)
    assert isinstance(exc, AllModelsFailedError)
    assert isinstance(exc, lc.ModelError) and exc.is_retryable is False
    assert [f.model for f in exc.failures] == ["primary", "backup"]
    assert isinstance(exc.__cause__, AllModelsFailedError)
    assert isinstance(exc.__cause__.__cause__, type(error))


def test_mixed_failures_raise_the_general_error() -> None:
    """Different kinds of failure across models raise the general ReliableChatModelError."""
    model = _model(RateLimitError("slow"), backup=ServerError("boom"))
    with pytest.raises(ReliableChatModelError) as caught:
        model.invoke("hi")
    assert type(caught.value) is ReliableChatModelError
    assert isinstance(caught.value, lc.LangChainException)
    assert len(caught.value.errors) == 4


def test_deadline_exceeded_raises_a_timeout_error() -> None:
    """A request that runs out of time between retries is a ModelTimeoutError."""
    clock = FakeClock()
    manager = LLMManager(max_retries=3, clock=clock, timeouts=TimeoutPolicy(total=1.0))
    manager.register_model(
        "slow", ScriptedModel(default=ServerError("boom"), latency=5.0, clock=clock)
    )
    with pytest.raises(ReliableTimeoutError) as caught:
        ReliableChatModel(manager=manager).invoke("hi")
    assert isinstance(caught.value, lc.ModelTimeoutError)
    assert caught.value.deadline_exceeded


def test_stream_failure_before_first_token_is_typed() -> None:
    """A stream that no model could start raises the same typed error as invoke."""
    model = _model(ServerError("boom", status_code=503))
    with pytest.raises(ReliableAPIError):
        list(model.stream("hi"))


def test_stream_interrupted_mid_answer_keeps_the_partial_text() -> None:
    """A stream broken after text arrived raises with the partial text and the cause."""
    model = _model(StreamBreak("Hello wor", ServerError("dropped")), "unused")
    received: list[str] = []
    with pytest.raises(ReliableStreamInterruptedError) as caught:
        for chunk in model.stream("hi"):
            received.append(chunk.text)
    exc = caught.value
    assert isinstance(exc, StreamInterruptedError) and isinstance(exc, lc.ModelError)
    assert exc.partial_text == "Hello wor" == "".join(received)
    assert isinstance(exc.__cause__, StreamInterruptedError)


async def test_async_failures_are_typed_too() -> None:
    """ainvoke and astream raise the same typed errors."""
    model = _model(RateLimitError("slow", status_code=429))
    with pytest.raises(ReliableRateLimitError):
        await model.ainvoke("hi")
    with pytest.raises(ReliableRateLimitError):
        async for _ in model.astream("hi"):
            pass


def test_errors_survive_pickling() -> None:
    """The typed error pickles (for multiprocessing and task queues) with its failures."""
    model = _model(ServerError("boom", status_code=500))
    with pytest.raises(ReliableAPIError) as caught:
        model.invoke("hi")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is ReliableAPIError
    assert [f.model for f in copy.failures] == ["primary"]
