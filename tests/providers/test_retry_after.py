"""Retry-After from the wire: honoured through the injected clock, or a reason to fall back."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import pytest

from reliable_llm import ProviderUnavailableError, StreamInterruptedError
from reliable_llm.providers import parse_retry_after
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    HTTPError,
    Reply,
    StreamCut,
    StreamErrorEvent,
    rate_limited,
)
from tests.providers.conftest import KINDS, ManagerFactory, Target, ask

THREE_MODES = ("sync", "async", "stream")


@pytest.mark.parametrize("mode", THREE_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_retry_after_two_seconds_is_slept_before_the_retry(
    kind: str,
    mode: str,
    server: FakeLLMServer,
    clock: FakeClock,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A 429 with Retry-After: 2 is retried on the same model after an injected 2 s sleep."""
    made = target(kind)
    server.script(made.scripted_as, rate_limited(retry_after="2"), Reply("second try"))
    manager = make_manager(made.provider)

    response = await ask(manager, mode)

    assert response.text == "second try"
    assert response.model == "primary"
    assert clock.sleeps == [2.0]
    assert server.request_count(made.scripted_as) == 2


@pytest.mark.parametrize("mode", THREE_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_retry_after_beyond_the_deadline_falls_back_at_once(
    kind: str,
    mode: str,
    server: FakeLLMServer,
    clock: FakeClock,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A Retry-After longer than the request's time left moves to the fallback without sleeping."""
    made = target(kind)
    server.set_default(made.scripted_as, rate_limited(retry_after="45"))
    manager = make_manager(made.provider, total=30.0)

    response = await ask(manager, mode)

    assert response.text == "fallback answer"
    assert clock.sleeps == []
    assert server.request_count(made.scripted_as) == 1
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {"retry_after_exceeds_deadline": 1}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_retry_after_ms_header_wins(
    kind: str,
    server: FakeLLMServer,
    clock: FakeClock,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """``retry-after-ms: 1500`` is honoured as a 1.5 s wait."""
    made = target(kind)
    limited = HTTPError(429, headers={"retry-after-ms": "1500", "retry-after": "9"})
    server.script(made.scripted_as, limited, Reply("done"))
    manager = make_manager(made.provider)

    assert manager.chat("hi").text == "done"
    assert clock.sleeps == [1.5]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_retry_after_as_http_date(
    kind: str,
    server: FakeLLMServer,
    clock: FakeClock,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A Retry-After HTTP date a few seconds ahead becomes a wait of about that long."""
    made = target(kind)
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    server.script(made.scripted_as, rate_limited(retry_after=when), Reply("done"))
    manager = make_manager(made.provider)

    assert manager.chat("hi").text == "done"
    assert len(clock.sleeps) == 1 and 2.0 <= clock.sleeps[0] <= 4.0


def test_parse_retry_after_forms() -> None:
    """Seconds, milliseconds, HTTP dates and garbage parse as documented."""
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 5)}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "4"}) == 4.0
    assert parse_retry_after({}) is None


@pytest.mark.parametrize("kind", ["openai", "groq"])
async def test_insufficient_quota_is_not_retried(
    kind: str,
    server: FakeLLMServer,
    clock: FakeClock,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A 429 for an exhausted quota is no rate limit: it falls back at once, no sleep."""
    made = target(kind)
    server.set_default(made.scripted_as, HTTPError(429, code="insufficient_quota"))
    manager = make_manager(made.provider)

    response = manager.chat("hi")

    assert response.text == "fallback answer"
    assert isinstance(response.attempts[0].error, ProviderUnavailableError)
    assert server.request_count(made.scripted_as) == 1
    assert clock.sleeps == []


ALPHABET = Reply("abcdefghijklmnopqrstuvwxyz", chunk_size=4)


@pytest.mark.parametrize(
    "fault",
    [StreamErrorEvent(after_chunks=2, reply=ALPHABET), StreamCut(after_chunks=2, reply=ALPHABET)],
    ids=["error_event", "cut"],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_failure_after_streamed_text_is_an_interruption(
    kind: str,
    fault: StreamErrorEvent | StreamCut,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A stream failing after text reached the caller raises StreamInterruptedError, not success."""
    made = target(kind)
    server.script(made.scripted_as, fault)
    manager = make_manager(made.provider)
    received: list[str] = []

    with pytest.raises(StreamInterruptedError) as caught:
        for chunk in manager.stream("hi"):
            received.append(chunk.text)

    assert caught.value.partial_text == "abcdefgh" == "".join(received)
    assert server.request_count(made.scripted_as) == 1
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 1
