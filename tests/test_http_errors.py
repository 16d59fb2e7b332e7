"""classify_http_error: one set of HTTP rules for any client, by what its exceptions carry."""

from __future__ import annotations

from typing import Any

import pytest

from reliable_llm import (
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    LLMManager,
    ModelNotFoundError,
    OverloadedError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ServerError,
    classify_http_error,
)
from reliable_llm.testing import FakeClock, ScriptedModel


class _Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class StatusError(Exception):
    """Shaped like an SDK's APIStatusError: a response, a body, no SDK import needed."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, headers or {})
        self.body = body


class ReadTimeout(Exception):
    """Named like httpx's timeout."""


class RemoteProtocolError(Exception):
    """Named like httpx's dropped-connection error."""


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (StatusError(429, headers={"retry-after": "3"}), RateLimitError),
        (StatusError(503), ServerError),
        (StatusError(529), OverloadedError),
        (StatusError(401), AuthenticationError),
        (StatusError(404), ModelNotFoundError),
        (
            StatusError(400, {"error": {"code": "context_length_exceeded"}}),
            ContextWindowExceededError,
        ),
        (
            StatusError(
                400,
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "prompt is too long"},
                },
            ),
            ContextWindowExceededError,
        ),
        (StatusError(400, {"error": {"code": "content_filter"}}), ContentPolicyError),
        (StatusError(422, {"error": {"message": "bad field"}}), InvalidRequestError),
        (StatusError(429, {"error": {"code": "insufficient_quota"}}), ProviderUnavailableError),
        (ReadTimeout("read timed out"), ProviderTimeoutError),
        (TimeoutError(), ProviderTimeoutError),
        (RemoteProtocolError("peer closed"), ProviderConnectionError),
        (ConnectionResetError(), ProviderConnectionError),
    ],
)
def test_statuses_bodies_and_transport_errors_map_onto_the_tree(
    exc: Exception, expected: type[Exception]
) -> None:
    """Each failure shape becomes the error class a user would expect, with its cause."""
    error = classify_http_error(exc)
    assert type(error) is expected
    assert error is not None and error.__cause__ is exc


def test_retry_after_status_and_request_id_are_kept() -> None:
    """Retry-After (seconds or milliseconds), the status and the request id are carried."""
    error = classify_http_error(
        StatusError(429, headers={"retry-after-ms": "1500", "x-request-id": "req_1"})
    )
    assert error is not None
    assert (error.retry_after, error.status_code, error.request_id) == (1.5, 429, "req_1")


def test_unknown_and_configuration_errors_are_left_alone() -> None:
    """Exceptions with no sign of HTTP, and configuration errors, are not classified."""
    assert classify_http_error(ValueError("bug")) is None
    assert classify_http_error(ConfigurationError("set KEY")) is None


def test_usable_as_a_model_classifier(clock: FakeClock) -> None:
    """As classify_error=, a 401 from a callable falls back at once and counts on the breaker."""
    manager = LLMManager(clock=clock)

    def client(prompt: str) -> str:
        raise StatusError(401, {"error": {"message": "invalid key"}})

    manager.register_model("a", client, classify_error=classify_http_error)
    manager.register_model("b", ScriptedModel(default="fine"))
    manager.set_fallback_chain(["b"])
    assert manager.chat("hi").model == "b"
    assert clock.sleeps == []
    assert manager.get_model_info("a")["last_error_type"] == "AuthenticationError"
