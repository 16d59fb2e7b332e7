"""reliable-llm's per-request attributes on the LangChain run, for LangSmith and other tracers.

Every answer's generation carries `reliable_llm.adapters.trace_attributes` in its
``generation_info`` (a stream's on its closing chunk), so a `BaseCallbackHandler.on_llm_end`
reads them from its `LLMResult`, tracers record them with the run's outputs, and LangChain
copies them into the message's ``response_metadata``, alike for ``invoke`` and ``stream``.

A traced run (one with callback handlers) also gets them in its metadata: the run manager's
``metadata`` is the run's own metadata dict, which LangChain's tracers send with the finished
run (LangSmith shows it on the run's Metadata tab; it is ``run.extra["metadata"]`` for a
`BaseTracer`), failed runs included. langchain-core 1.8's ``stream()``/``astream()`` do not
hand ``_stream`` the run manager, so a stream's run has them in its outputs only.
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

__all__ = ["trace_failure", "trace_response"]

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun


def _traced(run_manager: RunManager | None) -> bool:
    return run_manager is not None and bool(run_manager.handlers)


def trace_response(
    run_manager: RunManager | None,
    response: ChatResponse,
    manager: LLMManager,
    model: str | None,
    fallbacks: Sequence[str] | None,
) -> dict[str, Any]:
    """An answered request's attributes, for its generation's ``generation_info``; also put
    in the run's metadata when the run is traced and its run manager was handed over."""
    attributes = response_trace_attributes(response, request_route(manager, model, fallbacks))
    if _traced(run_manager):
        assert run_manager is not None
        run_manager.metadata.update(attributes)
    return attributes


def trace_failure(
    run_manager: RunManager | None,
    error: BaseException,
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
