"""What a `ReliableLLM` reports: what a registered model can do, and how an answer was obtained.

`model_metadata` is LlamaIndex's `LLMMetadata` for the model tried first; `response_info` is
the ``additional_kwargs`` of every response, under the same keys as the LangChain adapter's
``response_metadata`` (`langchain_reliable_llm._metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS

from reliable_llm import ChatResponse
from reliable_llm.adapters import attempt_records

__all__ = ["model_metadata", "response_info"]


def _positive_int(*values: object) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def model_metadata(
    name: str, info: Mapping[str, Any], *, max_tokens: int | None = None
) -> LLMMetadata:
    """LlamaIndex metadata for the registered model ``name``.

    ``info`` is `LLMManager.get_model_info` output. The model's registered metadata wins
    (``context_window``, ``max_output_tokens`` or ``num_output``, ``function_calling``,
    ``model_name`` or ``model``); then what its provider describes about itself (a wrapped
    LlamaIndex LLM reports its own metadata); then LlamaIndex's defaults. Models are assumed
    to support function calling unless their metadata says ``function_calling: False``.
    """
    registered: Mapping[str, Any] = info.get("metadata") or {}
    described: Mapping[str, Any] = info.get("provider") or {}
    context_window = _positive_int(
        registered.get("context_window"), described.get("context_window")
    )
    num_output = _positive_int(
        max_tokens,
        registered.get("max_output_tokens"),
        registered.get("num_output"),
        described.get("max_output_tokens"),
    )
    if "function_calling" in registered:
        function_calling = bool(registered["function_calling"])
    else:
        function_calling = bool(described.get("function_calling", True))
    model_name = next(
        (
            v
            for v in (registered.get("model_name"), registered.get("model"), described.get("model"))
            if isinstance(v, str) and v
        ),
        name,
    )
    return LLMMetadata(
        context_window=context_window or DEFAULT_CONTEXT_WINDOW,
        num_output=num_output or DEFAULT_NUM_OUTPUTS,
        is_chat_model=True,
        is_function_calling_model=function_calling,
        model_name=model_name,
    )


def response_info(response: ChatResponse) -> dict[str, Any]:
    """How ``response`` was obtained, for a LlamaIndex response's ``additional_kwargs``.

    The LangChain adapter's ``response_metadata`` keys with the same meanings: ``model`` (the
    registered model that answered), ``provider``, ``provider_model`` (the provider's model
    id, when it said), ``finish_reason``, ``cached``, ``fallback_from`` (the models given up
    before ``model``, as the core reports them: none for a cache hit), ``fallbacks`` (how
    many), ``attempts`` (every upstream call), ``cost`` and ``id`` when known; then token
    counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).
    """
    fallback_from = response.fallback_from
    info: dict[str, Any] = {
        "model": response.model,
        "provider": response.provider,
        "provider_model": response.provider_model,
        "finish_reason": response.finish_reason,
        "cached": response.cached,
        "fallback_from": list(fallback_from),
        "fallbacks": len(fallback_from),
        "attempts": attempt_records(response),
    }
    if response.cost is not None:
        info["cost"] = response.cost
    if response.response_id is not None:
        info["id"] = response.response_id
    usage = response.usage
    if usage is not None:
        info["prompt_tokens"] = usage.input_tokens
        info["completion_tokens"] = usage.output_tokens
        info["total_tokens"] = usage.total_tokens
    return info
