"""Errors that are both reliable-llm errors and LangChain model errors.

A failed `ReliableChatModel` call raises one of these, so code written for either library
catches it::

    ReliableChatModelError(AllModelsFailedError, langchain_core.exceptions.ModelError)
    ├── ReliableRateLimitError        also ModelRateLimitError    every model was rate-limited
    ├── ReliableAPIError              also ModelAPIError          every model failed server-side
    ├── ReliableTimeoutError          also ModelTimeoutError      timeouts, or the deadline passed
    ├── ReliableConnectionError       also ModelConnectionError   every model was unreachable
    ├── ReliableAuthenticationError   also ModelAuthenticationError
    ├── ReliablePermissionDeniedError also ModelPermissionDeniedError
    ├── ReliableModelNotFoundError    also langchain's ModelNotFoundError
    ├── ReliableInvalidRequestError   also ModelInvalidRequestError
    └── ReliableContextOverflowError  also ContextOverflowError
    ReliableStreamInterruptedError(StreamInterruptedError, ModelError)

The specific class is chosen when every provider error of the request maps to the same
LangChain class; otherwise the base class is raised. ``is_retryable`` is always False:
the manager has already retried and fallen back, and a framework retry on top would stack
retries (LangChain's retry middleware honours ``ModelError.is_retryable``).
"""

from __future__ import annotations

from langchain_core import exceptions as lc

from reliable_llm import (
    AllModelsFailedError,
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
    StreamInterruptedError,
)

__all__ = [
    "ReliableAPIError",
    "ReliableAuthenticationError",
    "ReliableChatModelError",
    "ReliableConnectionError",
    "ReliableContextOverflowError",
    "ReliableInvalidRequestError",
    "ReliableModelNotFoundError",
    "ReliablePermissionDeniedError",
    "ReliableRateLimitError",
    "ReliableStreamInterruptedError",
    "ReliableTimeoutError",
    "to_langchain_error",
]


class ReliableChatModelError(AllModelsFailedError, lc.ModelError):
    """No model answered; ``failures`` says why, model by model."""

    is_retryable = False


class ReliableRateLimitError(ReliableChatModelError, lc.ModelRateLimitError):
    """Every model that was tried rate-limited the request."""

    is_retryable = False


class ReliableAPIError(ReliableChatModelError, lc.ModelAPIError):
    """Every model that was tried failed on the provider's side (HTTP 5xx)."""

    is_retryable = False


class ReliableTimeoutError(ReliableChatModelError, lc.ModelTimeoutError):
    """Every model timed out, or the request's deadline passed."""

    is_retryable = False


class ReliableConnectionError(ReliableChatModelError, lc.ModelConnectionError):
    """No model that was tried could be reached."""

    is_retryable = False


class ReliableAuthenticationError(ReliableChatModelError, lc.ModelAuthenticationError):
    """Every model that was tried rejected its credentials (HTTP 401)."""


class ReliablePermissionDeniedError(ReliableChatModelError, lc.ModelPermissionDeniedError):
    """Every model that was tried denied permission (HTTP 403)."""


class ReliableModelNotFoundError(ReliableChatModelError, lc.ModelNotFoundError):
    """No provider knew its model (HTTP 404)."""


class ReliableInvalidRequestError(ReliableChatModelError, lc.ModelInvalidRequestError):
    """Every model that was tried rejected the request as invalid (HTTP 400 / 422)."""


class ReliableContextOverflowError(ReliableChatModelError, lc.ContextOverflowError):
    """The input exceeded the context window of every model that was tried."""


class ReliableStreamInterruptedError(StreamInterruptedError, lc.ModelError):
    """A stream broke after part of the answer reached the caller; ``partial_text`` has it."""

    is_retryable = False


# Most specific first: the first matching pair decides an error's LangChain class.
_BY_ERROR: tuple[tuple[type[ProviderError], type[ReliableChatModelError]], ...] = (
    (RateLimitError, ReliableRateLimitError),
    (ProviderTimeoutError, ReliableTimeoutError),
    (ProviderConnectionError, ReliableConnectionError),
    (ServerError, ReliableAPIError),
    (AuthenticationError, ReliableAuthenticationError),
    (PermissionDeniedError, ReliablePermissionDeniedError),
    (ModelNotFoundError, ReliableModelNotFoundError),
    (ContextWindowExceededError, ReliableContextOverflowError),
    (InvalidRequestError, ReliableInvalidRequestError),
)


def _class_for(error: ProviderError) -> type[ReliableChatModelError]:
    for ours, theirs in _BY_ERROR:
        if isinstance(error, ours):
            return theirs
    return ReliableChatModelError


def to_langchain_error(
    error: AllModelsFailedError | StreamInterruptedError,
) -> ReliableChatModelError | ReliableStreamInterruptedError:
    """The LangChain-catchable twin of ``error`` (raise it ``from error``)."""
    if isinstance(error, StreamInterruptedError):
        cause = error.__cause__ if error.__cause__ is not None else error
        twin = ReliableStreamInterruptedError(error.model, error.partial_text, cause)
        return twin
    if isinstance(error, ReliableChatModelError):
        return error
    classes = {_class_for(e) for e in error.errors}
    if error.deadline_exceeded:
        cls: type[ReliableChatModelError] = ReliableTimeoutError
    elif len(classes) == 1:
        cls = classes.pop()
    else:
        cls = ReliableChatModelError
    return cls(error.failures, deadline_exceeded=error.deadline_exceeded)
