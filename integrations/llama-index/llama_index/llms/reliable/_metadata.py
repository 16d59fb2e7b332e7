"""What `ReliableLLM.metadata` says about a registered model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS

__all__ = ["model_metadata"]


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
