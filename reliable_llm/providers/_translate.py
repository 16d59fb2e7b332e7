"""SDK exceptions -> our error tree, shared by the OpenAI and Anthropic protocols.

Both official SDKs are generated from the same template, so their exception classes have
the same names and shapes (``APIStatusError`` with ``status_code``, ``body`` and
``response``; ``APIConnectionError``; ``APITimeoutError``; ``APIError`` for in-band stream
errors). Each protocol module calls `translate_error` with its SDK module; this is the only
place that looks at SDK exception types, status codes, error codes and message texts.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from types import ModuleType

from reliable_llm._errors import (
    AuthenticationError,
    ConfigurationError,
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
from reliable_llm.providers._secret import SecretStr

__all__ = ["parse_retry_after", "scrub", "translate_error"]

_MAX_MESSAGE = 500

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
_CONTEXT_CODES = frozenset(("context_length_exceeded", "string_above_max_length"))
_CONTEXT_PHRASES = (
    "context length",
    "context window",
    "context_length",
    "prompt is too long",
    "maximum context",
    "too many tokens",
)
_CONTENT_CODES = frozenset(("content_filter", "content_policy_violation"))
_CONTENT_PHRASES = ("content management policy", "content policy", "content filter")


def _mask(text: str, secret: SecretStr | None) -> str:
    return text.replace(secret.get_secret_value(), str(secret)) if secret else text


def scrub(text: str, secret: SecretStr | None) -> str:
    """``text`` with every occurrence of the secret masked, cut to a readable length."""
    text = _mask(text, secret)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _scrub_exception(exc: BaseException, secret: SecretStr | None) -> None:
    """Mask the secret in an SDK exception's text, since it becomes our error's cause.

    An upstream error message may echo the key; the chained cause is printed with every
    traceback of ours.
    """
    if not secret or secret.get_secret_value() not in str(exc):
        return
    exc.args = tuple(_mask(a, secret) if isinstance(a, str) else a for a in exc.args)
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        exc.message = _mask(message, secret)  # type: ignore[attr-defined]


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    text = headers.get("retry-after")
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    return seconds if seconds >= 0 else None


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """``(type, code, message)`` of an error body in either provider's shape."""
    if isinstance(body, str):
        text: str = body
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


def _rejection(code: str | None, message: str) -> type[ProviderError]:
    lowered = message.lower()
    if code in _CONTEXT_CODES or any(p in lowered for p in _CONTEXT_PHRASES):
        return ContextWindowExceededError
    if code in _CONTENT_CODES or any(p in lowered for p in _CONTENT_PHRASES):
        return ContentPolicyError
    return InvalidRequestError


def _class_for(
    status: int | None, kind: str | None, code: str | None, message: str
) -> type[ProviderError]:
    if code == "insufficient_quota":
        return ProviderUnavailableError
    if status == 529 or kind == "overloaded_error":
        return OverloadedError
    if status is None or status < 400:
        # An in-band error of a 200 stream: only its type says what happened.
        by_type = _BY_TYPE.get(kind or "") or _BY_TYPE.get(code or "")
        if by_type is not None:
            return by_type
        return _rejection(code, message) if kind == "invalid_request_error" else ServerError
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
    return _rejection(code, message)


def _transport_class(exc: BaseException) -> type[ProviderError] | None:
    """Errors of the HTTP stack that the SDK did not wrap (Anthropic streams, for one)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names or isinstance(exc, TimeoutError):
        return ProviderTimeoutError
    if names & {"TransportError", "RequestError", "EndOfStream", "SSLError"} or isinstance(
        exc, ConnectionError
    ):
        return ProviderConnectionError
    return None


def translate_error(
    exc: BaseException, sdk: ModuleType | None, *, provider: str, secret: SecretStr | None
) -> ProviderError | None:
    """Our error for an exception raised by ``sdk`` or its HTTP stack; None if foreign.

    The caller raises the result ``from exc``. Messages never contain the API key.
    """
    if isinstance(exc, ProviderError):
        return exc
    if sdk is None or isinstance(exc, ConfigurationError):
        return None
    _scrub_exception(exc, secret)
    status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    error_class: type[ProviderError]
    if isinstance(exc, sdk.APITimeoutError):
        error_class, message = ProviderTimeoutError, "request timed out"
    elif isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        error_class, message = ProviderConnectionError, f"connection failed{detail}"
    elif isinstance(exc, sdk.APIResponseValidationError):
        error_class, message = ServerError, f"malformed response: {exc.message}"
        status = exc.status_code
    elif isinstance(exc, sdk.APIError):
        kind, code, body_message = _error_fields(exc.body)
        message = body_message or str(getattr(exc, "message", "") or exc)
        response = getattr(exc, "response", None)
        if response is not None:
            status = response.status_code
            headers = response.headers
            request_id = headers.get("x-request-id") or headers.get("request-id")
            retry_after = parse_retry_after(headers)
        error_class = _class_for(status, kind, code, message)
        if status is not None and status < 400:
            message = f"error event in the response stream: {message}"
            status = None
    else:
        transport = _transport_class(exc)
        if transport is not None:
            error_class, message = transport, f"{type(exc).__name__}: {exc}"
        elif isinstance(exc, ValueError):  # JSONDecodeError, pydantic ValidationError
            error_class, message = ServerError, f"malformed response: {type(exc).__name__}"
        else:
            return None
    return error_class(
        scrub(message, secret),
        status_code=status,
        request_id=request_id,
        retry_after=retry_after,
        provider=provider,
    )
