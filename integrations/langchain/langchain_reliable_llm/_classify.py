"""Classifying exceptions raised through LangChain chat models into reliable-llm's error tree.

OpenAI and Anthropic SDK errors (and LangChain's wrappers of them) are recognised by their
``status_code`` (or ``response.status_code``) and by LangChain's `ModelError` classes, so
neither SDK is imported here. Timeouts and connection failures without a status are
recognised by class name along the exception's MRO (``APITimeoutError``,
``APIConnectionError``, httpx's ``TimeoutException`` / ``NetworkError``).
"""

from __future__ import annotations

from langchain_core import exceptions as lc

from reliable_llm import (
    AuthenticationError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    classify_http_error,
)

__all__ = ["classify_langchain_error"]

_BY_LANGCHAIN: tuple[tuple[type[lc.ModelError], type[ProviderError]], ...] = (
    (lc.ContextOverflowError, ContextWindowExceededError),
    (lc.ModelRateLimitError, RateLimitError),
    (lc.ModelTimeoutError, ProviderTimeoutError),
    (lc.ModelConnectionError, ProviderConnectionError),
    (lc.ModelAPIError, ServerError),
    (lc.ModelAuthenticationError, AuthenticationError),
    (lc.ModelPermissionDeniedError, PermissionDeniedError),
    (lc.ModelNotFoundError, ModelNotFoundError),
    (lc.ModelInvalidRequestError, InvalidRequestError),
)


def classify_langchain_error(exc: BaseException) -> ProviderError | None:
    """Map an exception raised by a LangChain chat model (or an SDK under it) to our tree.

    The core's HTTP rules decide from the status, body and class the exception carries
    (`reliable_llm.classify_http_error`); LangChain's own `ModelError` classes name the kind
    when there is no status, and a `ContextOverflowError` is always a context-window error.
    Usable as ``classify_error=`` of `reliable_llm.LLMManager.register_model`; returns None
    for exceptions it does not recognise, leaving them to the manager's default rules.
    """
    if isinstance(exc, ProviderError):
        return exc
    error = classify_http_error(exc)
    if isinstance(exc, lc.ContextOverflowError) or (error is None or error.status_code is None):
        kind = next((ours for theirs, ours in _BY_LANGCHAIN if isinstance(exc, theirs)), None)
        if kind is not None and not isinstance(error, kind):
            fields = error.__dict__ if error is not None else {}
            error = kind(
                f"{type(exc).__name__}: {exc}",
                status_code=fields.get("status_code"),
                request_id=fields.get("request_id"),
                retry_after=fields.get("retry_after"),
            )
            error.__cause__ = exc
    return error
