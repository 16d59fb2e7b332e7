"""Classifying exceptions that did not come from a provider of ours."""

from __future__ import annotations

from collections.abc import Callable

from reliable_llm._errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    TransientError,
)

__all__ = ["ErrorClassifier", "classify_exception"]

ErrorClassifier = Callable[[BaseException], ProviderError | None]
"""Maps an exception from a model to our error tree; None falls back to the default rules."""


def default_classification(exc: BaseException) -> ProviderError:
    """The default for foreign exceptions: all transient, timeouts and connections named."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return ProviderTimeoutError(message)
    if isinstance(exc, ConnectionError):
        return ProviderConnectionError(message)
    return TransientError(message)


def classify_exception(
    exc: BaseException, classifier: ErrorClassifier | None, model: str, provider: str
) -> ProviderError:
    """Return ``exc`` as a `ProviderError`, classified once; ours pass through unchanged."""
    if isinstance(exc, ProviderError):
        error = exc
    else:
        error = (classifier(exc) if classifier is not None else None) or default_classification(exc)
        error.__cause__ = exc
    if error.model is None:
        error.model = model
    if error.provider is None:
        error.provider = provider
    return error
