"""What a `ReliableChatModel` reports about how an answer was obtained.

`response_metadata` is the ``response_metadata`` of every answer (and of a stream's last
chunk), under the same keys as the LlamaIndex adapter's ``additional_kwargs``
(`llama_index.llms.reliable._metadata.response_info`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun

from reliable_llm import AllModelsFailedError, ChatResponse, LLMManager
from reliable_llm.adapters import (
    attempt_records,
    failure_trace_attributes,
    request_route,
    response_trace_attributes,
)

__all__ = ["response_metadata", "trace_failure", "trace_response"]


def response_metadata(response: ChatResponse) -> dict[str, Any]:
    """The response metadata LangChain users and tracers see for ``response``.

    The same keys, with the same meanings, as ``additional_kwargs`` of the LlamaIndex
    adapter's responses: ``model`` (the registered model that answered; LangChain's
    ``model_name`` repeats it), ``provider``, ``provider_model`` (the provider's model id,
    when it said), ``finish_reason``, ``cached``, ``fallback_from`` (the models given up
    before ``model``, as the core reports them: none for a cache hit), ``fallbacks`` (how
    many), ``attempts`` (every upstream call of the request), and ``cost`` (USD) and ``id``
    (the provider's response id) when known; ``content_changes`` when the route changed the
    request's content for a model it tried (``model``, ``action``: stripped / converted /
    skipped, ``part``, ``detail``, ``count``).
    """
    model = response.model
    fallback_from = response.fallback_from
    metadata: dict[str, Any] = {
        "model_name": model,
        "model": model,
        "provider": response.provider,
        "provider_model": response.provider_model,
        "finish_reason": response.finish_reason,
        "cached": response.cached,
        "fallback_from": list(fallback_from),
        "fallbacks": len(fallback_from),
        "attempts": attempt_records(response),
    }
    if response.cost is not None:
        metadata["cost"] = response.cost
    if response.response_id is not None:
        metadata["id"] = response.response_id
    if response.content_changes:
        metadata["content_changes"] = [change._asdict() for change in response.content_changes]
    return metadata


# -- tracing ----------------------------------------------------------------------------------
# reliable-llm's per-request attributes on the LangChain run, for LangSmith and other tracers.
#
# Every answer's generation carries `reliable_llm.adapters.trace_attributes` in its
# ``generation_info`` (a stream's on its closing chunk), so a `BaseCallbackHandler.on_llm_end`
# reads them from its `LLMResult`, tracers record them with the run's outputs, and LangChain
# copies them into the message's ``response_metadata``, alike for ``invoke`` and ``stream``.
#
# A traced run (one with callback handlers) also gets them in its metadata: the run manager's
# ``metadata`` is the run's own metadata dict, which LangChain's tracers send with the finished
# run (LangSmith shows it on the run's Metadata tab; it is ``run.extra["metadata"]`` for a
# `BaseTracer`), failed runs included. langchain-core 1.8's ``stream()``/``astream()`` do not
# hand ``_stream`` the run manager, so a stream's run has them in its outputs only.

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
