"""The one error tree of reliable-llm.

Provider SDK errors are translated once, at the provider boundary, into this tree.
Nothing else in the library looks at SDK exception types or message strings.

```
ReliableLLMError
├── ConfigurationError (also ValueError)        bad input or configuration; never retried
│   ├── UnknownModelError (also KeyError)       a model name that is not registered
│   └── CacheKeyError (also TypeError)          request parameters that cannot form a cache key
├── ProviderError                               one upstream call failed
│   ├── TransientError                          retry, then fall back; counts against the breaker
│   │   ├── RateLimitError                      HTTP 429
│   │   ├── ProviderTimeoutError                connect or read timeout
│   │   ├── ProviderConnectionError             connection refused, reset, dropped stream
│   │   └── ServerError                         HTTP 5xx
│   │       └── OverloadedError                 HTTP 529 / "overloaded"
│   ├── ProviderUnavailableError                no retry, fall back; counts against the breaker
│   │   ├── AuthenticationError                 HTTP 401
│   │   │   └── MissingAPIKeyError              no API key configured for the provider
│   │   ├── PermissionDeniedError               HTTP 403
│   │   └── ModelNotFoundError                  HTTP 404
│   └── RequestRejectedError                    no retry, fall back; breaker neutral
│       ├── ContextWindowExceededError
│       ├── ContentPolicyError
│       ├── InvalidResponseError                a complete answer a validator rejected
│       │   └── EmptyResponseError              a 200 answer with neither text nor tool calls
│       └── InvalidRequestError                 HTTP 400 / 422
├── AllModelsFailedError                        every model of a request was given up
│   └── LocalRateLimitError                     ... the last at a client-side limit
├── StreamInterruptedError                      a stream failed after text reached the caller
└── CircuitOpenError                            a breaker refused a call made directly through it
```

Every `ProviderError` class says, as class attributes, whether it is `retryable`, whether the
manager should `fall_back` to the next model, and whether it `counts_against_breaker`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "AllModelsFailedError",
    "AuthenticationError",
    "CacheKeyError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "EmptyResponseError",
    "FailureReason",
    "InvalidRequestError",
    "InvalidResponseError",
    "LocalRateLimitError",
    "MissingAPIKeyError",
    "ModelFailure",
    "ModelNotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitError",
    "ReliableLLMError",
    "RequestRejectedError",
    "ServerError",
    "StreamInterruptedError",
    "TransientError",
    "UnknownModelError",
]


class ReliableLLMError(Exception):
    """Base class of every error raised by reliable-llm."""


class ConfigurationError(ReliableLLMError, ValueError):
    """Invalid configuration or input; the message says what was wrong and how to fix it."""


class UnknownModelError(ConfigurationError, KeyError):
    """A model name that is not registered with the manager."""

    def __init__(self, name: str, registered: Sequence[str]) -> None:
        known = ", ".join(repr(n) for n in sorted(registered)) or "none"
        super().__init__(
            f"unknown model {name!r}; registered models: {known}. "
            "Register it first with LLMManager.register_model()."
        )
        self.name = name
        self.registered = tuple(registered)

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


class CacheKeyError(ConfigurationError, TypeError):
    """Request parameters that cannot be serialized into a cache key."""


class ProviderError(ReliableLLMError):
    """One upstream call failed.

    Attributes:
        status_code: HTTP status of the failed call, when there was one.
        request_id: The provider's request id, when it sent one.
        retry_after: Seconds the provider asked us to wait before retrying, if any.
        model: Name of the registered model the call was made for, when known.
        provider: Name of the provider (``"openai"``, ``"anthropic"``, ...), when known.
    """

    retryable: bool = False
    fall_back: bool = True
    counts_against_breaker: bool = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.model = model
        self.provider = provider

    def __str__(self) -> str:
        details = []
        if self.provider:
            details.append(f"provider={self.provider}")
        if self.model:
            details.append(f"model={self.model}")
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.retry_after is not None:
            details.append(f"retry_after={self.retry_after:g}s")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_provider_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_provider_error(
    cls: type[ProviderError], message: str, state: dict[str, object]
) -> ProviderError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class TransientError(ProviderError):
    """A failure likely to pass: retried on the same model, then falls back."""

    retryable = True


class RateLimitError(TransientError):
    """The provider rate-limited the call (HTTP 429)."""


class ProviderTimeoutError(TransientError):
    """The call timed out."""


class ProviderConnectionError(TransientError):
    """The connection failed or dropped before a complete answer arrived."""


class ServerError(TransientError):
    """The provider failed on its side (HTTP 5xx)."""


class OverloadedError(ServerError):
    """The provider is overloaded (HTTP 529 or an overloaded error event)."""


class ProviderUnavailableError(ProviderError):
    """The model cannot be used as configured: no retry, fall back, counts against the breaker."""


class AuthenticationError(ProviderUnavailableError):
    """The API key was missing, invalid or revoked (HTTP 401)."""


class MissingAPIKeyError(AuthenticationError):
    """No API key is configured for the provider: given none, and its variable is unset.

    Handled like an HTTP 401 (give the model up, fall back, count it against the breaker):
    a deployment with only some providers' keys set keeps serving from the others.

    Attributes:
        env_var: The environment variable that would supply the key, if the provider has one.
    """

    def __init__(
        self,
        message: str,
        *,
        env_var: str | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, model=model, provider=provider)
        self.env_var = env_var


class PermissionDeniedError(ProviderUnavailableError):
    """The key may not use this model or resource (HTTP 403)."""


class ModelNotFoundError(ProviderUnavailableError):
    """The provider does not know the model or deployment (HTTP 404)."""


class RequestRejectedError(ProviderError):
    """This request cannot succeed as sent; another model may accept it. Breaker neutral."""

    counts_against_breaker = False


class ContextWindowExceededError(RequestRejectedError):
    """The prompt plus requested output exceed the model's context window."""


class ContentPolicyError(RequestRejectedError):
    """The provider refused the content under its usage policy."""


class InvalidResponseError(RequestRejectedError):
    """A complete answer that is not usable: empty, truncated, a refusal, or failing a schema.

    Raised by response validators (``reliable_llm.validators``, or your own callable
    ``validator(response) -> None``) to reject an answer: it is not retried on the same model,
    the next model of the route is tried, and the answer is never returned nor cached. It is
    not held against the model's breaker unless ``counts_against_breaker=True`` is passed.

    Attributes:
        reason: A short machine-readable reason (``"empty"``, ``"truncated"``, ``"refusal"``,
            ``"schema"``, or your own), shown in `AllModelsFailedError`, the rejected attempt's
            record and ``get_metrics()["invalid_responses"]``.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "invalid",
        counts_against_breaker: bool = False,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            request_id=request_id,
            retry_after=retry_after,
            model=model,
            provider=provider,
        )
        self.reason = reason
        if counts_against_breaker:
            self.counts_against_breaker = True  # this instance only; the class stays neutral


class EmptyResponseError(InvalidResponseError):
    """The model answered with neither text nor tool calls (a stop sequence that matched at
    once, say): not retried, not cached, not held against the model's breaker; the next model
    of the route is tried. Its ``reason`` is ``"empty"``."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("reason", "empty")
        super().__init__(message, **kwargs)


class InvalidRequestError(RequestRejectedError):
    """The provider rejected the request as malformed (HTTP 400 / 422)."""


class FailureReason(enum.StrEnum):
    """Why the manager gave up on one model during a request."""

    CIRCUIT_OPEN = "circuit_open"
    COOLING_DOWN = "cooling_down"
    """Skipped without a call: another process of the fleet got a 429 or 503 with a retry
    hint (``RedisState``), and the hint has not run out; the breaker is not open."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    NON_RETRYABLE = "non_retryable"
    CIRCUIT_OPENED = "circuit_opened"
    RETRY_AFTER_EXCEEDS_DEADLINE = "retry_after_exceeds_deadline"
    BACKOFF_EXCEEDS_DEADLINE = "backoff_exceeds_deadline"
    RETRY_BUDGET_EXHAUSTED = "retry_budget_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    HANDED_OVER = "handed_over"  # a transient failure handed over to a healthy next model
    INVALID_RESPONSE = "invalid_response"  # a validator rejected the model's answer
    RATE_LIMITED_LOCALLY = "rate_limited_locally"  # a deployment at its rpm/tpm limit
    BULKHEAD_FULL = "bulkhead_full"  # a deployment at its calls-in-flight limit
    UNSUPPORTED_INPUT = "unsupported_input"
    """The request carries a content part the model cannot take (an image for a model
    without vision, say): skipped without a call; its breaker is not touched."""


class ModelFailure(NamedTuple):
    """One model given up during a request, with every error its attempts raised.

    ``detail`` says more when there were no attempts (``unsupported_input``: which part the
    model cannot take, and how to declare that it can).
    """

    model: str
    reason: FailureReason
    errors: tuple[ProviderError, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """Return a one-line human description of this failure."""
        # ``reason`` formats as its value (a StrEnum), without the enum's ``.value`` lookup.
        if not self.errors:
            if self.detail:
                return f"{self.model}: {self.reason} ({self.detail})"
            return f"{self.model}: {self.reason}"
        last = self.errors[-1]
        return (
            f"{self.model}: {self.reason} after {len(self.errors)} attempt(s), "
            f"last error {type(last).__name__}: {last}"
        )


class AllModelsFailedError(ReliableLLMError):
    """Every model of the request was given up; ``failures`` says why, model by model.

    The exception's ``__cause__`` is the last provider error seen, if any.
    """

    def __init__(
        self, failures: Sequence[ModelFailure], *, deadline_exceeded: bool = False
    ) -> None:
        self.failures = tuple(failures)
        self.deadline_exceeded = deadline_exceeded
        lines = "; ".join([f.describe() for f in self.failures]) or "no model was tried"
        prefix = "deadline exceeded" if deadline_exceeded else "all models failed"
        super().__init__(f"{prefix}: {lines}")

    @property
    def errors(self) -> tuple[ProviderError, ...]:
        """Every provider error of the request, in the order they happened."""
        return tuple(e for f in self.failures for e in f.errors)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.failures,), {"deadline_exceeded": self.deadline_exceeded})


class LocalRateLimitError(AllModelsFailedError):
    """The request ended at a client-side limit: the last model of its route (a deployment's
    requests or tokens per minute, or its calls in flight) had no room, and waiting for room
    would not have fit the request's deadline. Nothing was sent to that deployment and no
    breaker counted it.

    Attributes:
        limit: The limit reached: ``"rpm"``, ``"tpm"`` or ``"max_concurrent_calls"``.
        retry_in: Seconds until the soonest deployment refused has room (``math.inf`` when the
            request alone exceeds a tokens-per-minute limit; an estimate for calls in flight).
    """

    def __init__(
        self,
        failures: Sequence[ModelFailure],
        *,
        limit: str = "rpm",
        retry_in: float = 0.0,
        deadline_exceeded: bool = False,
    ) -> None:
        super().__init__(failures, deadline_exceeded=deadline_exceeded)
        self.limit = limit
        self.retry_in = retry_in
        if math.isinf(retry_in):
            room = "the request alone needs more tokens than the limit allows; raise it"
        else:
            room = f"room in {retry_in:.3g}s"
        self.args = (f"{self.args[0]}; client-side {limit} limit: {room}",)

    def __reduce__(self) -> tuple[object, ...]:
        import functools

        rebuild = functools.partial(type(self), limit=self.limit, retry_in=self.retry_in)
        return (rebuild, (self.failures,))


class StreamInterruptedError(ReliableLLMError):
    """A stream failed after some of the answer had already reached the caller.

    Attributes:
        partial_text: The text yielded before the interruption.
        model: The registered model that was streaming.
    """

    def __init__(self, model: str, partial_text: str, cause: BaseException) -> None:
        super().__init__(
            f"stream from model {model!r} was interrupted after {len(partial_text)} characters: "
            f"{type(cause).__name__}: {cause}"
        )
        self.model = model
        self.partial_text = partial_text
        self.__cause__ = cause


class CircuitOpenError(ReliableLLMError):
    """A circuit breaker refused a call because it is open (or its half-open trial is busy)."""

    def __init__(self, model: str, retry_in: float) -> None:
        super().__init__(
            f"circuit breaker for model {model!r} is open; next trial in {max(retry_in, 0.0):.1f}s"
        )
        self.model = model
        self.retry_in = retry_in
