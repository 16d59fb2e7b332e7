"""The fault matrix: every wire fault x every provider kind x sync / async / stream / astream.

Each row scripts the fault as the primary model's persistent answer, with one retry allowed
and a scripted fallback, and pins what a user would notice: who answered, which typed
error the attempts saw, how many requests reached the server (the SDK's own retries are
off, so exactly ours), how long we slept, and whether the breaker counted the failures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import reliable_llm
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
    RateLimitError,
    ServerError,
    TransientError,
)
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    Hang,
    HTTPError,
    MalformedJSON,
    ResetConnection,
    Step,
    StreamCut,
    StreamErrorEvent,
    context_length_exceeded,
    not_found,
    overloaded,
    rate_limited,
    server_error,
    unauthorized,
)
from tests.providers.conftest import KINDS, MODES, ManagerFactory, Target, ask


@dataclass(frozen=True)
class Fault:
    """A scripted fault and the typed error it must become."""

    step: Step
    error: type[ProviderError]
    #: The error for Anthropic when it differs (its wire says more, e.g. "overloaded").
    anthropic_error: type[ProviderError] | None = None
    #: The error for streaming requests when it differs (stream-only faults).
    stream_error: type[ProviderError] | None = None


FAULTS = {
    "429_rate_limit": Fault(rate_limited(retry_after="1"), RateLimitError),
    "500_server_error": Fault(server_error(500), ServerError),
    "502_bad_gateway": Fault(server_error(502), ServerError),
    "503_unavailable": Fault(server_error(503), ServerError, anthropic_error=OverloadedError),
    "529_overloaded": Fault(overloaded(), OverloadedError),
    "401_unauthorized": Fault(unauthorized(), AuthenticationError),
    "403_forbidden": Fault(HTTPError(403), PermissionDeniedError),
    "404_not_found": Fault(not_found(), ModelNotFoundError),
    "400_context_length": Fault(context_length_exceeded(), ContextWindowExceededError),
    "400_content_policy": Fault(
        HTTPError(400, code="content_filter", message="Blocked by the content filtering policy."),
        ContentPolicyError,
    ),
    "400_invalid": Fault(HTTPError(400), InvalidRequestError),
    "hang": Fault(Hang(5.0), ProviderTimeoutError),
    "hang_mid_stream": Fault(Hang(5.0, after_chunks=0), ProviderTimeoutError),
    "connection_reset": Fault(ResetConnection(), ProviderConnectionError),
    "malformed_json": Fault(MalformedJSON(), ServerError),
    "stream_error_event": Fault(
        StreamErrorEvent(after_chunks=0), ServerError, anthropic_error=OverloadedError
    ),
    "stream_cut": Fault(StreamCut(after_chunks=0), TransientError, ProviderConnectionError),
    "stream_cut_incomplete": Fault(
        StreamCut(after_chunks=0, incomplete_transfer=True), TransientError
    ),
}

HANG_TIMEOUT = 0.15


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault_name", sorted(FAULTS))
async def test_fault_is_typed_counted_and_falls_back(
    fault_name: str,
    kind: str,
    mode: str,
    server: FakeLLMServer,
    clock: FakeClock,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A persistent fault gives the typed error, exact upstream calls, and the fallback's answer."""
    fault = FAULTS[fault_name]
    made = target(kind)
    expected = fault.error
    if made.protocol == "anthropic" and fault.anthropic_error is not None:
        expected = fault.anthropic_error
    if mode in ("stream", "astream") and fault.stream_error is not None:
        expected = fault.stream_error
    server.set_default(made.scripted_as, fault.step)
    per_attempt = HANG_TIMEOUT if fault_name.startswith("hang") else 10.0
    manager = make_manager(made.provider, per_attempt=per_attempt)

    started = time.perf_counter()
    response = await ask(manager, mode)
    elapsed = time.perf_counter() - started

    assert response.text == "fallback answer"
    assert response.model == "backup"
    attempts = 1 + int(expected.retryable)
    assert server.request_count(made.scripted_as) == attempts
    info = manager.get_model_info("primary")
    assert info["breaker"]["failure_count"] == (attempts if expected.counts_against_breaker else 0)
    last_error = getattr(reliable_llm, info["last_error_type"])
    assert issubclass(last_error, expected), f"{last_error.__name__} is not a {expected.__name__}"
    if expected.retryable:
        assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 0.5
    else:
        assert clock.sleeps == []
    if mode in ("sync", "async"):
        seen = [a.error for a in response.attempts if a.error is not None]
        assert len(seen) == attempts
        for error in seen:
            assert isinstance(error, expected), f"{type(error).__name__}: {error}"
            assert error.provider == made.provider.provider_name
    if fault_name.startswith("hang"):
        assert elapsed < 2.0, "the per-attempt timeout must reach the SDK call"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, ProviderTimeoutError),
        (409, TransientError),
        (413, InvalidRequestError),
        (422, InvalidRequestError),
        (504, ServerError),
    ],
)
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_other_statuses_map_onto_the_tree(
    kind: str,
    status: int,
    expected: type[ProviderError],
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """Less common statuses still become the right typed error, with the status attached."""
    made = target(kind)
    server.set_default(made.scripted_as, HTTPError(status))
    manager = make_manager(made.provider, max_retries=0)

    response = await manager.achat("hi")

    error = response.attempts[0].error
    assert type(error) is expected
    assert error is not None and error.status_code == status
    assert response.text == "fallback answer"
