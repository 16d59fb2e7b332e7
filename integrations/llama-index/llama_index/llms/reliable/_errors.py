"""Classifying exceptions raised by wrapped LlamaIndex LLMs into reliable-llm's error tree.

LlamaIndex LLMs raise whatever their SDK raises. We never import an SDK here: we read the
HTTP status the exception carries (``status_code``, ``status``, ``http_status`` or
``response.status_code``), the error code of OpenAI-style bodies (``context_length_exceeded``,
``insufficient_quota``, ``content_filter``), the ``Retry-After`` header and the request id.
Without a status we look at the standard library's timeout and connection errors and at the
class names SDKs give theirs (``APITimeoutError``, ``ReadTimeout``, ``APIConnectionError``...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from reliable_llm import (
    AuthenticationError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ServerError,
    TransientError,
)
from reliable_llm.providers import parse_retry_after

__all__ = ["classify_llm_error", "error_code_of", "status_code_of"]

_BY_STATUS: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    408: ProviderTimeoutError,
    409: TransientError,
    422: InvalidRequestError,
    429: RateLimitError,
    529: OverloadedError,
}
# Error codes of OpenAI-style bodies, as the core's own providers read them.
_CONTEXT_CODES = frozenset(("context_length_exceeded", "string_above_max_length"))
_CONTENT_CODES = frozenset(("content_filter", "content_policy_violation"))
# httpx transport errors that the SDK did not wrap.
_TRANSPORT_NAMES = frozenset(("TransportError", "RequestError", "EndOfStream"))


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


def error_code_of(exc: BaseException) -> str | None:
    """The provider's error code (``context_length_exceeded``, ...) from the error or its body."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        code = inner.get("code") if isinstance(inner, Mapping) else None
        if isinstance(code, str):
            return code
    return None


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
    if any("Connect" in n or n in _TRANSPORT_NAMES for n in names):
        return ProviderConnectionError
    return TransientError


def _by_status(code: int, error_code: str | None) -> type[ProviderError]:
    if error_code == "insufficient_quota":
        return ProviderUnavailableError
    if error_code in _CONTEXT_CODES:
        return ContextWindowExceededError
    if error_code in _CONTENT_CODES:
        return ContentPolicyError
    if code in _BY_STATUS:
        return _BY_STATUS[code]
    if code >= 500:
        return ServerError
    return InvalidRequestError if code >= 400 else TransientError


def classify_llm_error(exc: BaseException, *, provider: str = "llama_index") -> ProviderError:
    """Translate an exception from a LlamaIndex LLM; our own errors pass through unchanged.

    The HTTP status decides when there is one (429 rate limit, 5xx server error, 401/403/404
    unusable model, other 4xx rejected request; the body's error code refines it, as the core's
    providers do); otherwise timeouts and connection errors
    are named and anything else counts as transient, as the core does for foreign errors.
    The caller raises the result ``from exc`` so the original stays attached.
    """
    if isinstance(exc, ProviderError):
        return exc
    code = status_code_of(exc)
    headers = _headers(exc)
    cls = _by_type(exc) if code is None else _by_status(code, error_code_of(exc))
    return cls(
        f"{type(exc).__name__}: {exc}",
        status_code=code,
        request_id=_request_id(exc, headers),
        retry_after=parse_retry_after(headers),
        provider=provider,
    )
