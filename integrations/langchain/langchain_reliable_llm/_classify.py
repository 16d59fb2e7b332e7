"""Classifying exceptions raised through LangChain chat models into reliable-llm's error tree.

OpenAI and Anthropic SDK errors (and LangChain's wrappers of them) are recognised by their
``status_code`` (or ``response.status_code``) and by LangChain's `ModelError` classes, so
neither SDK is imported here. Timeouts and connection failures without a status are
recognised by class name along the exception's MRO (``APITimeoutError``,
``APIConnectionError``, httpx's ``TimeoutException`` / ``NetworkError``).
"""

from __future__ import annotations

from typing import Any

from langchain_core import exceptions as lc

from reliable_llm import (
    AuthenticationError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
)

__all__ = ["classify_langchain_error"]

_TIMEOUT_NAMES = frozenset(("APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout"))
_CONNECTION_NAMES = frozenset(
    ("APIConnectionError", "NetworkError", "ConnectError", "RemoteProtocolError", "ReadError")
)
_CONTEXT_CODES = frozenset(("context_length_exceeded", "string_above_max_length"))
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


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _header(exc: BaseException, name: str) -> str | None:
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get(name) if headers is not None else None
    except Exception:  # headers of an unexpected shape: no hint
        return None
    return value if isinstance(value, str) else None


def _retry_after(exc: BaseException) -> float | None:
    value = _header(exc, "retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _by_status(status: int, exc: BaseException) -> type[ProviderError] | None:
    if status == 429:
        return RateLimitError
    if status == 529:
        return OverloadedError
    if status >= 500:
        return ServerError
    if status == 408:
        return ProviderTimeoutError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return ModelNotFoundError
    if status in (400, 413, 422):
        if isinstance(exc, lc.ContextOverflowError) or getattr(exc, "code", None) in _CONTEXT_CODES:
            return ContextWindowExceededError
        return InvalidRequestError
    return None


def _kind(exc: BaseException) -> type[ProviderError] | None:
    status = _status(exc)
    if status is not None:
        kind = _by_status(status, exc)
        if kind is not None:
            return kind
    for theirs, ours in _BY_LANGCHAIN:
        if isinstance(exc, theirs):
            return ours
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _TIMEOUT_NAMES or isinstance(exc, TimeoutError):
        return ProviderTimeoutError
    if names & _CONNECTION_NAMES or isinstance(exc, ConnectionError):
        return ProviderConnectionError
    return None


def classify_langchain_error(exc: BaseException) -> ProviderError | None:
    """Map an exception raised by a LangChain chat model (or an SDK under it) to our tree.

    Usable as ``classify_error=`` of `reliable_llm.LLMManager.register_model`. Returns None
    for exceptions it does not recognise, leaving them to the manager's default rules.
    """
    if isinstance(exc, ProviderError):
        return exc
    kind = _kind(exc)
    if kind is None:
        return None
    request_id = getattr(exc, "request_id", None)
    error = kind(
        f"{type(exc).__name__}: {exc}",
        status_code=_status(exc),
        request_id=request_id if isinstance(request_id, str) else None,
        retry_after=_retry_after(exc),
    )
    error.__cause__ = exc
    return error
