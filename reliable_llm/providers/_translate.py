"""SDK exceptions -> our error tree, shared by the OpenAI and Anthropic protocols.

Both official SDKs are generated from the same template, so their exception classes have
the same names and shapes (``APIStatusError`` with ``status_code``, ``body`` and
``response``; ``APIConnectionError``; ``APITimeoutError``; ``APIError`` for in-band stream
errors). Each protocol module calls `translate_error` with its SDK module; this is the only
place that looks at SDK exception types; the status, body and transport rules it applies are
the core's own (`reliable_llm._http_errors`), shared with every other HTTP-client wrapper.
"""

from __future__ import annotations

from types import ModuleType

from reliable_llm._errors import (
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ServerError,
)
from reliable_llm._http_errors import (
    apply_retry_hints,
    class_for_status,
    error_fields,
    parse_retry_after,
    transport_class,
)
from reliable_llm.providers._secret import SecretStr

__all__ = ["parse_retry_after", "scrub", "translate_error"]

_MAX_MESSAGE = 500


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


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _timed_out(exc: BaseException) -> bool:
    """Whether an SDK timeout error really is a timeout.

    The SDKs' aiohttp transport reports every dropped or reset connection as a connect
    timeout; the exception it was raised from says what happened.
    """
    root = _root_cause(exc)
    return root is exc or transport_class(root) is not ProviderConnectionError


def translate_error(
    exc: BaseException, sdk: ModuleType | None, *, provider: str, secret: SecretStr | None
) -> ProviderError | None:
    """Our error for an exception raised by ``sdk`` or its HTTP stack; None if foreign.

    The caller raises the result ``from exc``. Messages never contain the API key.
    """
    if isinstance(exc, ProviderError):
        if exc.provider is None:
            exc.provider = provider
        return exc
    if sdk is None or isinstance(exc, ConfigurationError | UnicodeEncodeError):
        return None  # a request that cannot be encoded is the caller's to fix (see the engine)
    _scrub_exception(exc, secret)
    status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    headers = None
    error_class: type[ProviderError]
    if isinstance(exc, sdk.APITimeoutError) and _timed_out(exc):
        error_class, message = ProviderTimeoutError, "request timed out"
    elif isinstance(exc, sdk.APITimeoutError):
        root = _root_cause(exc)
        error_class, message = ProviderConnectionError, f"connection failed: {_describe(root)}"
    elif isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        error_class, message = ProviderConnectionError, f"connection failed{detail}"
    elif isinstance(exc, sdk.APIResponseValidationError):
        error_class, message = ServerError, f"malformed response: {exc.message}"
        status = exc.status_code
    elif isinstance(exc, sdk.APIError):
        kind, code, body_message = error_fields(exc.body)
        message = body_message or str(getattr(exc, "message", "") or exc)
        response = getattr(exc, "response", None)
        if response is not None:
            status = response.status_code
            headers = response.headers
            request_id = headers.get("x-request-id") or headers.get("request-id")
            retry_after = parse_retry_after(headers)
        error_class = class_for_status(status, kind, code, message)
        if status is not None and status < 400:
            message = f"error event in the response stream: {message}"
            status = None
    else:
        transport = transport_class(exc)
        if transport is not None:
            error_class, message = transport, f"{type(exc).__name__}: {exc}"
        elif isinstance(exc, ValueError):  # JSONDecodeError, pydantic ValidationError
            error_class, message = ServerError, f"malformed response: {type(exc).__name__}"
        else:
            return None
    error = error_class(
        scrub(message, secret),
        status_code=status,
        request_id=request_id,
        retry_after=retry_after,
        provider=provider,
    )
    return apply_retry_hints(error, headers)
