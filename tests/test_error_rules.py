"""The classification table and the retry hints: what a failure's wording and headers mean."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest

from reliable_llm import (
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    ErrorRule,
    InvalidRequestError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    add_error_rule,
    classify_http_error,
    error_rules,
    remove_error_rule,
)
from reliable_llm._retry_hints import apply_retry_hints, parse_retry_after, rate_limit_reset
from reliable_llm.providers._outcome import in_band_error


class _Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class StatusError(Exception):
    """Shaped like an SDK's APIStatusError."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, headers or {})
        self.body = body


def _classify(status: int, message: str, **fields: object) -> ProviderError:
    error = classify_http_error(StatusError(status, {"error": {"message": message, **fields}}))
    assert error is not None
    return error


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens. However, your messages resulted "
        "in 9000 tokens.",  # OpenAI, Azure, vLLM, DeepSeek
        "prompt is too long: 208950 tokens > 200000 maximum",  # Anthropic
        "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000",
        "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 "
        "maximum context length",  # Mistral
        "The decoder prompt (length 5000) is longer than the maximum model length of 4096.",
        "This model's maximum prompt length is 131072 but the request contains 200000 tokens.",
        "the request exceeds the available context size, try increasing it",  # llama.cpp
        "Trying to keep the first 5000 tokens when context the overflows. However, the model "
        "is loaded with context length of only 4096 tokens",  # LM Studio
        "The input token count (1200000) exceeds the maximum number of tokens allowed "
        "(1048576).",  # Gemini
        "Please reduce the length of the messages or completion.",  # Groq, Cerebras
        "litellm.ContextWindowExceededError: litellm.BadRequestError: too long",  # LiteLLM
        "This endpoint's maximum context length is 128000 tokens.",  # OpenRouter
    ],
)
def test_context_window_wordings_are_recognised(message: str) -> None:
    """The too-long-prompt wording of each preset provider and gateway is ContextWindowExceeded."""
    assert type(_classify(400, message)) is ContextWindowExceededError


def test_llama_cpp_error_type_is_context_window() -> None:
    """llama.cpp's exceed_context_size_error type is recognised without its wording."""
    error = _classify(400, "too big", type="exceed_context_size_error")
    assert type(error) is ContextWindowExceededError


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            400,
            "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy.",
        ),
        (400, "Your request was rejected as a result of our safety system."),
        (
            403,
            'Your chosen model requires moderation and your input was flagged for "harassment".',
        ),  # OpenRouter
        (400, "litellm.ContentPolicyViolationError: litellm.BadRequestError: flagged"),
    ],
)
def test_content_policy_wordings_are_recognised(status: int, message: str) -> None:
    """Content-policy rejections of Azure, OpenAI, OpenRouter and LiteLLM are ContentPolicyError."""
    assert type(_classify(status, message)) is ContentPolicyError


def test_wording_rules_do_not_touch_rate_limits_or_server_errors() -> None:
    """A 429 about tokens per minute stays a rate limit; a 500 mentioning context stays a 5xx."""
    assert type(_classify(429, "Too many tokens per minute")) is RateLimitError
    assert type(_classify(500, "context length worker crashed")) is ServerError
    assert type(_classify(403, "not allowed")) is PermissionDeniedError


def test_user_rules_come_first_and_can_be_removed() -> None:
    """add_error_rule extends the table without subclassing; the newest rule wins."""
    rule = ErrorRule(OverloadedError, statuses=(400,), phrases=("Capacity Exhausted",))
    assert type(_classify(400, "capacity exhausted, try later")) is InvalidRequestError
    add_error_rule(rule)
    try:
        assert error_rules()[0] is rule
        assert type(_classify(400, "capacity exhausted, try later")) is OverloadedError
    finally:
        remove_error_rule(rule)
    assert type(_classify(400, "capacity exhausted, try later")) is InvalidRequestError


@pytest.mark.parametrize(
    "kwargs",
    [{"error": ValueError, "statuses": (400,)}, {"error": ServerError}],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any]) -> None:
    """A rule for a non-provider error, or one with no criterion, raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="ErrorRule"):
        ErrorRule(**kwargs)


def test_should_retry_false_turns_retry_off_for_that_error_only() -> None:
    """x-should-retry: false makes this 500 non-retryable; it still falls back."""
    error = classify_http_error(StatusError(500, headers={"x-should-retry": "false"}))
    assert isinstance(error, ServerError)
    assert (error.retryable, error.fall_back) == (False, True)
    assert ServerError.retryable is True


def test_should_retry_true_turns_retry_on() -> None:
    """x-should-retry: true makes a 400 retryable, as the official SDKs treat it."""
    error = classify_http_error(StatusError(400, headers={"x-should-retry": "true"}))
    assert isinstance(error, InvalidRequestError)
    assert error.retryable is True


def test_retry_after_http_date_and_milliseconds() -> None:
    """Retry-After as an HTTP date counts from now; retry-after-ms wins over Retry-After."""
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30)
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 1.0),
        (
            {
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "6m0s",
                "x-ratelimit-reset-requests": "1s",
            },
            360.0,
        ),
        ({"x-ratelimit-reset-requests": "2m59.56s"}, 179.56),  # Groq
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        (
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:50Z",
            },
            30.0,
        ),
        ({"x-ratelimit-reset-tokens": "soon"}, None),
    ],
)
def test_rate_limit_reset_headers(headers: dict[str, str], seconds: float | None) -> None:
    """The exhausted limit's reset time (or the soonest) is the wait; nonsense is ignored."""
    reset = rate_limit_reset(headers, now=1_700_000_000.0)
    assert reset == (None if seconds is None else pytest.approx(seconds))


def test_reset_headers_hint_only_a_429_without_retry_after() -> None:
    """Reset headers fill in for a missing Retry-After on a 429, never override it."""
    headers = {"x-ratelimit-reset-requests": "7s"}
    assert apply_retry_hints(RateLimitError("x"), headers).retry_after == 7.0
    assert apply_retry_hints(RateLimitError("x", retry_after=2.0), headers).retry_after == 2.0
    assert apply_retry_hints(ServerError("x"), headers).retry_after is None
    limited = classify_http_error(StatusError(429, headers=headers))
    assert limited is not None and limited.retry_after == 7.0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": 429, "message": "Rate limit exceeded upstream"}, RateLimitError),
        ({"code": 502, "message": "Provider returned error"}, ServerError),
        ({"code": "server_error", "message": "boom"}, ServerError),
        (
            {"message": "This endpoint's maximum context length is 8192 tokens."},
            ContextWindowExceededError,
        ),
    ],
)
def test_in_band_error_objects(error: dict[str, object], expected: type[ProviderError]) -> None:
    """An error object inside a 200 (OpenRouter's numeric codes included) is classified."""
    assert type(in_band_error(error, "openrouter")) is expected
