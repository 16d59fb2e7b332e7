"""LlamaIndex integration for reliable-llm: ``from llama_index.llms.reliable import ReliableLLM``.

`ReliableLLM` is a LlamaIndex `FunctionCallingLLM` whose calls go through a reliable-llm
`LLMManager` (circuit breakers, retries, fallbacks, caching, metrics).
`ReliableLLMMetadata` is its ``metadata``: LlamaIndex's fields plus the content the model
takes (``supports_vision``, ...).
`LlamaIndexLLMProvider` registers any existing LlamaIndex LLM as a model of a manager.
The ``Reliable*Event`` classes are the instrumentation events emitted for retries,
fallbacks, breaker transitions, cache hits and each finished request.
"""

from __future__ import annotations

from llama_index.llms.reliable._classify import classify_llm_error
from llama_index.llms.reliable._events import (
    ReliableBreakerTransitionEvent,
    ReliableCacheHitEvent,
    ReliableFallbackEvent,
    ReliableRequestEvent,
    ReliableRetryEvent,
)
from llama_index.llms.reliable._llm import ReliableLLM
from llama_index.llms.reliable._metadata import ReliableLLMMetadata
from llama_index.llms.reliable._provider import LlamaIndexLLMProvider

__all__ = [
    "LlamaIndexLLMProvider",
    "ReliableBreakerTransitionEvent",
    "ReliableCacheHitEvent",
    "ReliableFallbackEvent",
    "ReliableLLM",
    "ReliableLLMMetadata",
    "ReliableRequestEvent",
    "ReliableRetryEvent",
    "classify_llm_error",
]
