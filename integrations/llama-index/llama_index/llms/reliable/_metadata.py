"""What `ReliableLLM.metadata` says about a registered model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS

__all__ = ["ReliableLLMMetadata", "model_metadata"]


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
