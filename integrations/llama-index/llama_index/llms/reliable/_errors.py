"""Classifying exceptions raised by wrapped LlamaIndex LLMs into reliable-llm's error tree.

LlamaIndex LLMs raise whatever their SDK raises. We never import an SDK here: we read the
HTTP status the exception carries (``status_code``, ``status``, ``http_status`` or
``response.status_code``), its ``Retry-After`` header and request id, and otherwise look at the
standard library's timeout and connection errors and the class names SDKs give their
timeout / connection errors (``APITimeoutError``, ``ReadTimeout``, ``APIConnectionError``...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

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
    TransientError,
)

__all__ = ["classify_llm_error", "status_code_of"]

_BY_STATUS: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    408: ProviderTimeoutError,
    409: TransientError,
    413: ContextWindowExceededError,
    422: InvalidRequestError,
    429: RateLimitError,
    529: OverloadedError,
}


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, if any."""
    for name in ("status_code", "status", "http_status", "code"):
        code = _int(getattr(exc, name, None))
        if code is not None:
            return code
    return _int(getattr(getattr(exc, "response", None), "status_code", None))


def _headers(exc: BaseException) -> Mapping[str, str]:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) else {}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _request_id(exc: BaseException, headers: Mapping[str, str]) -> str | None:
    value = getattr(exc, "request_id", None) or headers.get("x-request-id")
    return value if isinstance(value, str) else None


def _by_type(exc: BaseException) -> type[ProviderError]:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ProviderTimeoutError
    if isinstance(exc, ConnectionError):
        return ProviderConnectionError
    names = [cls.__name__ for cls in type(exc).__mro__]
    if any("Timeout" in n for n in names):
        return ProviderTimeoutError
    if any("Connection" in n or "Connect" in n for n in names):
        return ProviderConnectionError
    return TransientError


def classify_llm_error(exc: BaseException, *, provider: str = "llama_index") -> ProviderError:
    """Translate an exception from a LlamaIndex LLM; our own errors pass through unchanged.

    The HTTP status decides when there is one (429 rate limit, 5xx server error, 401/403/404
    unusable model, 400/422 rejected request, ...); otherwise timeouts and connection errors
    are named and anything else counts as transient, as the core does for foreign errors.
    The caller raises the result ``from exc`` so the original stays attached.
    """
    if isinstance(exc, ProviderError):
        return exc
    code = status_code_of(exc)
    headers = _headers(exc)
    if code is None:
        cls = _by_type(exc)
    elif code in _BY_STATUS:
        cls = _BY_STATUS[code]
    elif code >= 500:
        cls = ServerError
    elif code >= 400:
        cls = InvalidRequestError
    else:
        cls = TransientError
    return cls(
        f"{type(exc).__name__}: {exc}",
        status_code=code,
        request_id=_request_id(exc, headers),
        retry_after=_retry_after(headers),
        provider=provider,
    )
