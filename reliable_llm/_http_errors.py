"""Classifying failures of HTTP LLM clients by what they carry, without importing any SDK.

One set of rules for our own providers (after their SDK-specific unwrapping), for chat models
of other frameworks wrapped as providers, and for users' callables
(``register_model(..., classify_error=classify_http_error)``): the classification table
(`reliable_llm._error_rules`) reads status, error type, code and message, the HTTP status
decides the rest, retry hints come from the headers (`reliable_llm._retry_hints`), and
exceptions without a status are recognised as
timeouts or connection failures by their class names along the MRO (``APITimeoutError``,
``ReadTimeout``, ``APIConnectionError``, ``RemoteProtocolError``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reliable_llm._error_rules import match_rule
from reliable_llm._errors import (
    AuthenticationError,
    ConfigurationError,
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
from reliable_llm._retry_hints import apply_retry_hints, parse_retry_after

__all__ = [
    "apply_retry_hints",
    "class_for_status",
    "classify_http_error",
    "error_fields",
    "parse_retry_after",
    "status_code_of",
    "transport_class",
]

# Error ``type`` / ``code`` values of the OpenAI and Anthropic error bodies.
_BY_TYPE: dict[str, type[ProviderError]] = {
    "rate_limit_error": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "overloaded_error": OverloadedError,
    "api_error": ServerError,
    "server_error": ServerError,
    "timeout_error": ProviderTimeoutError,
    "authentication_error": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": ModelNotFoundError,
    "model_not_found": ModelNotFoundError,
}
_CONNECTION_NAMES = frozenset(
    (
        "APIConnectionError",
        "NetworkError",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "TransportError",
        "RequestError",
        "EndOfStream",
        "SSLError",
        "ProtocolError",
    )
)


def _status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (``status_code``, ``status``, ``http_status``,
    ``response.status_code``), if any."""
    for name in ("status_code", "status", "http_status"):
        status = _status(getattr(exc, name, None))
        if status is not None:
            return status
    return _status(getattr(getattr(exc, "response", None), "status_code", None))


def _headers(exc: BaseException) -> Mapping[str, str]:
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) or hasattr(headers, "get") else {}


def error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """``(type, code, message)`` of an error body in OpenAI's or Anthropic's shape."""
    if isinstance(body, str | bytes):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text)
        except ValueError:
            return None, None, text or None
    if not isinstance(body, Mapping):
        return None, None, None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        body = inner
    kind, code, message = body.get("type"), body.get("code"), body.get("message")
    return (
        kind if isinstance(kind, str) else None,
        str(code) if code is not None else None,
        message if isinstance(message, str) else None,
    )


def class_for_status(
    status: int | None, kind: str | None, code: str | None, message: str
) -> type[ProviderError]:
    """The error class for an HTTP status, its error body's type and code, and its message.

    The classification table (`reliable_llm.error_rules`) decides first; a failure no rule
    matches is judged by its status. ``status`` None (or below 400) is an in-band error of
    a successful response: only its type says what happened.
    """
    if status is not None and status < 400:
        status = None  # an in-band error
    ruled = match_rule(status, kind, code, message)
    if ruled is not None:
        return ruled
    if status is None:
        by_type = _BY_TYPE.get(kind or "") or _BY_TYPE.get(code or "")
        if by_type is not None:
            return by_type
        return InvalidRequestError if kind == "invalid_request_error" else ServerError
    if status == 429:
        return RateLimitError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return ModelNotFoundError
    if status == 408:
        return ProviderTimeoutError
    if status == 409:
        return TransientError
    if status >= 500:
        return ServerError
    return InvalidRequestError


def transport_class(exc: BaseException) -> type[ProviderError] | None:
    """Timeout or connection failure without an HTTP status, recognised by class; else None."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    if isinstance(exc, TimeoutError) or any("Timeout" in n for n in names):
        return ProviderTimeoutError
    if isinstance(exc, ConnectionError) or any(
        n in _CONNECTION_NAMES or "Connect" in n for n in names
    ):
        return ProviderConnectionError
    return None


def classify_http_error(exc: BaseException) -> ProviderError | None:
    """Our error for a failure of an HTTP LLM client, or None if it shows no sign of one.

    Usable as ``classify_error=`` of `LLMManager.register_model` for callables that use any
    HTTP SDK. Our own errors pass through; `ConfigurationError` is never reclassified. The
    result carries the status, request id and ``Retry-After``; its ``__cause__`` is ``exc``.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ConfigurationError):
        return None
    status = status_code_of(exc)
    headers = _headers(exc)
    kind, code, body_message = error_fields(getattr(exc, "body", None))
    own_code = getattr(exc, "code", None)
    if code is None and isinstance(own_code, str):
        code = own_code
    message = f"{type(exc).__name__}: {exc}"
    if status is not None:
        error_class = class_for_status(status, kind, code, body_message or message)
    else:
        transport = transport_class(exc)
        if transport is None:
            return None
        error_class = transport
    request_id = (
        getattr(exc, "request_id", None) or headers.get("x-request-id") or headers.get("request-id")
    )
    error = error_class(
        message,
        status_code=status,
        request_id=request_id if isinstance(request_id, str) else None,
        retry_after=parse_retry_after(headers),
    )
    apply_retry_hints(error, headers)
    error.__cause__ = exc
    return error
