"""What a `ReliableChatModel` reports about how an answer was obtained.

`response_metadata` is the ``response_metadata`` of every answer (and of a stream's last
chunk), under the same keys as the LlamaIndex adapter's ``additional_kwargs``
(`llama_index.llms.reliable._metadata.response_info`).
"""

from __future__ import annotations

from typing import Any

from reliable_llm import ChatResponse
from reliable_llm.adapters import attempt_records

__all__ = ["response_metadata"]


def response_metadata(response: ChatResponse) -> dict[str, Any]:
    """The response metadata LangChain users and tracers see for ``response``.

    The same keys, with the same meanings, as ``additional_kwargs`` of the LlamaIndex
    adapter's responses: ``model`` (the registered model that answered; LangChain's
    ``model_name`` repeats it), ``provider``, ``provider_model`` (the provider's model id,
    when it said), ``finish_reason``, ``cached``, ``fallback_from`` (the models given up
    before ``model``, as the core reports them: none for a cache hit), ``fallbacks`` (how
    many), ``attempts`` (every upstream call of the request), and ``cost`` (USD) and ``id``
    (the provider's response id) when known.
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
    return metadata
