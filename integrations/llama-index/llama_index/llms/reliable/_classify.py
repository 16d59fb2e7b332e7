"""Classifying exceptions raised by wrapped LlamaIndex LLMs into reliable-llm's error tree.

LlamaIndex LLMs raise whatever their SDK raises. The core's HTTP rules read what the
exception carries, without importing any SDK (`reliable_llm.classify_http_error`: the status,
the error body's type and code, ``Retry-After`` and the request id; or a timeout or
connection failure recognised by class). Anything else counts as transient, as the core does
for foreign errors.
"""

from __future__ import annotations

from reliable_llm import ProviderError, TransientError, classify_http_error

__all__ = ["classify_llm_error"]


def classify_llm_error(exc: BaseException, *, provider: str = "llama_index") -> ProviderError:
    """Translate an exception from a LlamaIndex LLM; our own errors pass through unchanged.

    The caller raises the result ``from exc`` so the original stays attached.
    """
    error = classify_http_error(exc)
    if error is None:
        error = TransientError(f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
    if error.provider is None:
        error.provider = provider
    return error
