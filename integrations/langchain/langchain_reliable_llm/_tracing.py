"""reliable-llm's per-request attributes on the LangChain run, for LangSmith and other tracers.

A traced run (one with callback handlers) gets `reliable_llm.adapters.trace_attributes` in
its metadata: the run manager's ``metadata`` is the run's own metadata dict, which LangChain's
tracers send with the finished run (LangSmith shows it on the run's Metadata tab; the same
dict is ``run.extra["metadata"]`` for a `BaseTracer`). The attributes also go into the
generation's ``generation_info``, so a plain `BaseCallbackHandler.on_llm_end` reads them from
its `LLMResult` (and tracers record them with the run's outputs).

A stream's closing chunk always carries them in ``generation_info``: langchain-core 1.8's
``stream()``/``astream()`` do not hand ``_stream`` the run manager, so there they reach the
run's outputs but not its metadata. An untraced ``invoke`` builds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun

from reliable_llm import AllModelsFailedError, ChatResponse, LLMManager
from reliable_llm.adapters import (
    failure_trace_attributes,
    request_route,
    response_trace_attributes,
)

__all__ = ["stream_attributes", "trace_failure", "trace_response"]

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun


def _traced(run_manager: RunManager | None) -> bool:
    return run_manager is not None and bool(run_manager.handlers)


def trace_response(
    run_manager: RunManager | None,
    response: ChatResponse,
    manager: LLMManager,
    model: str | None,
    fallbacks: Sequence[str] | None,
) -> dict[str, Any] | None:
    """Put an answered request's attributes on a traced run; them, or None when untraced."""
    if not _traced(run_manager):
        return None
    assert run_manager is not None
    attributes = response_trace_attributes(response, request_route(manager, model, fallbacks))
    run_manager.metadata.update(attributes)
    return attributes


def trace_failure(
    run_manager: RunManager | None,
    error: Exception,
    manager: LLMManager,
    model: str | None,
    fallbacks: Sequence[str] | None,
) -> None:
    """Put a failed request's attributes (the models given up and why) on a traced run,
    before its error is reported."""
    if not _traced(run_manager) or not isinstance(error, AllModelsFailedError):
        return
    assert run_manager is not None
    route = request_route(manager, model, fallbacks)
    run_manager.metadata.update(failure_trace_attributes(error, route))


def stream_attributes(
    run_manager: RunManager | None,
    response: ChatResponse,
    manager: LLMManager,
    model: str | None,
    fallbacks: Sequence[str] | None,
) -> dict[str, Any]:
    """A completed stream's attributes for its closing chunk, also put on the run when a
    run manager was handed over."""
    attributes = response_trace_attributes(response, request_route(manager, model, fallbacks))
    if _traced(run_manager):
        assert run_manager is not None
        run_manager.metadata.update(attributes)
    return attributes
