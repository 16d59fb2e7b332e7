"""What a `ReliableLLM` reports: what a registered model can do, and how an answer was obtained.

`model_metadata` is LlamaIndex's `LLMMetadata` for the model tried first; `response_info` is
the ``additional_kwargs`` of every response, under the same keys as the LangChain adapter's
``response_metadata`` (`langchain_reliable_llm._metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS

from reliable_llm import ChatResponse
from reliable_llm.adapters import attempt_records

__all__ = ["ReliableLLMMetadata", "model_metadata", "response_info"]


class ReliableLLMMetadata(LLMMetadata):
    """LlamaIndex's `LLMMetadata` plus the content the model takes.

    LlamaIndex's metadata has no field for multimodal input, so these follow the names
    LiteLLM's model registry uses (``supports_vision``, ``supports_audio_input``,
    ``supports_pdf_input``, ``supports_prompt_caching``), read from the model's
    capabilities (`reliable_llm.ModelCapabilities`: its provider's defaults with the
    registration's ``metadata["capabilities"]``).
    """

    supports_vision: bool = Field(
        default=False, description="Takes images (ImageBlock), by data, URL or file id."
    )
    supports_audio_input: bool = Field(default=False, description="Takes audio (AudioBlock).")
    supports_pdf_input: bool = Field(
        default=False, description="Takes documents (DocumentBlock), PDF and others."
    )
    supports_prompt_caching: bool = Field(
        default=False, description="Honours cache points (CachePoint, cache_control)."
    )


def _positive_int(*values: object) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def model_metadata(
    name: str, info: Mapping[str, Any], *, max_tokens: int | None = None
) -> ReliableLLMMetadata:
    """LlamaIndex metadata for the registered model ``name``.

    ``info`` is `LLMManager.get_model_info` output. The model's registered metadata wins
    (``context_window``, ``max_output_tokens`` or ``num_output``, ``function_calling``,
    ``model_name`` or ``model``); then what its provider describes about itself (a wrapped
    LlamaIndex LLM reports its own metadata); then LlamaIndex's defaults. Models are assumed
    to support function calling unless their metadata says ``function_calling: False``.
    The ``supports_*`` fields come from ``info["capabilities"]`` (what content it takes).
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
    capabilities: Mapping[str, Any] = info.get("capabilities") or {}
    model_name = next(
        (
            v
            for v in (registered.get("model_name"), registered.get("model"), described.get("model"))
            if isinstance(v, str) and v
        ),
        name,
    )
    return ReliableLLMMetadata(
        context_window=context_window or DEFAULT_CONTEXT_WINDOW,
        num_output=num_output or DEFAULT_NUM_OUTPUTS,
        is_chat_model=True,
        is_function_calling_model=function_calling,
        model_name=model_name,
        supports_vision=bool(capabilities.get("image")),
        supports_audio_input=bool(capabilities.get("audio")),
        supports_pdf_input=bool(capabilities.get("file")),
        supports_prompt_caching=bool(capabilities.get("prompt_caching")),
    )


def response_info(response: ChatResponse) -> dict[str, Any]:
    """How ``response`` was obtained, for a LlamaIndex response's ``additional_kwargs``.

    The LangChain adapter's ``response_metadata`` keys with the same meanings: ``model`` (the
    registered model that answered), ``provider``, ``provider_model`` (the provider's model
    id, when it said), ``finish_reason``, ``cached``, ``fallback_from`` (the models given up
    before ``model``, as the core reports them: none for a cache hit), ``fallbacks`` (how
    many), ``attempts`` (every upstream call), ``cost`` and ``id`` when known, and
    ``content_changes`` when the route changed the request's content for a model it tried;
    then token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``, and, when
    the provider reported them, ``cache_read_tokens`` and ``cache_creation_tokens``: input
    tokens read from / written to the prompt cache, and ``reasoning_tokens``).
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
    if response.content_changes:
        info["content_changes"] = [change._asdict() for change in response.content_changes]
    usage = response.usage
    if usage is not None:
        info["prompt_tokens"] = usage.input_tokens
        info["completion_tokens"] = usage.output_tokens
        info["total_tokens"] = usage.total_tokens
        if usage.cache_read_tokens or usage.cache_creation_tokens or usage.reasoning_tokens:
            info["cache_read_tokens"] = usage.cache_read_tokens
            info["cache_creation_tokens"] = usage.cache_creation_tokens
            info["reasoning_tokens"] = usage.reasoning_tokens
    return info
