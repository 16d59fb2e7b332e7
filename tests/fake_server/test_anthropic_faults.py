"""Each scripted fault surfaces in the Anthropic SDK as the exception a real outage raises."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest
from anthropic.types import MessageParam, RawMessageStreamEvent, TextBlock

from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    Hang,
    HTTPError,
    Reply,
    ResetConnection,
    StreamCut,
    StreamErrorEvent,
    context_length_exceeded,
    not_found,
    overloaded,
    rate_limited,
    server_error,
    unauthorized,
)

MODEL = "claude-fake"
MESSAGES: list[MessageParam] = [{"role": "user", "content": "Hi"}]


def _ask(client: anthropic.Anthropic) -> str:
    message = client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    block = message.content[0]
    assert isinstance(block, TextBlock)
    return block.text


@pytest.mark.parametrize(
    ("fault", "expected", "error_type"),
    [
        (overloaded(), anthropic.OverloadedError, "overloaded_error"),
        (server_error(), anthropic.InternalServerError, "api_error"),
        (rate_limited(), anthropic.RateLimitError, "rate_limit_error"),
        (unauthorized(), anthropic.AuthenticationError, "authentication_error"),
        (not_found(), anthropic.NotFoundError, "not_found_error"),
        (HTTPError(403), anthropic.PermissionDeniedError, "permission_error"),
    ],
)
def test_http_errors_map_to_sdk_exceptions(
    server: FakeLLMServer,
    anthropic_client: anthropic.Anthropic,
    fault: HTTPError,
    expected: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    """Each HTTP error raises the SDK class of its status with Anthropic's error body."""
    server.script(MODEL, fault)

    with pytest.raises(expected) as caught:
        _ask(anthropic_client)

    assert caught.value.status_code == fault.status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == error_type
    assert caught.value.request_id is not None


def test_overloaded_is_an_internal_server_error(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A 529 is both OverloadedError and InternalServerError, as callers may catch either."""
    server.script(MODEL, overloaded())

    with pytest.raises(anthropic.InternalServerError) as caught:
        _ask(anthropic_client)

    assert isinstance(caught.value, anthropic.OverloadedError)
    assert caught.value.status_code == 529


def test_rate_limit_retry_after_and_exact_count(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """The 429's retry-after header is readable, and each call is exactly one request."""
    server.script(MODEL, rate_limited(retry_after="7"), Reply("later"))

    with pytest.raises(anthropic.RateLimitError) as caught:
        _ask(anthropic_client)
    assert caught.value.response.headers["retry-after"] == "7"

    assert _ask(anthropic_client) == "later"
    assert server.request_count(MODEL) == 2


def test_context_length_exceeded(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """The 400 invalid_request_error says "prompt is too long", as Anthropic's does."""
    server.script(MODEL, context_length_exceeded())

    with pytest.raises(anthropic.BadRequestError) as caught:
        _ask(anthropic_client)

    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert caught.value.body["error"]["message"].startswith("prompt is too long")


def test_hang_times_out(server: FakeLLMServer, anthropic_client: anthropic.Anthropic) -> None:
    """Hang(5) with a 0.2 s client timeout raises APITimeoutError quickly."""
    server.script(MODEL, Hang(5))
    started = time.monotonic()

    with pytest.raises(anthropic.APITimeoutError):
        anthropic_client.with_options(timeout=0.2).messages.create(
            model=MODEL, max_tokens=50, messages=MESSAGES
        )

    assert time.monotonic() - started < 2


def test_reset_connection(server: FakeLLMServer, anthropic_client: anthropic.Anthropic) -> None:
    """A reset before any response raises APIConnectionError; the next call succeeds."""
    server.script(MODEL, ResetConnection())

    with pytest.raises(anthropic.APIConnectionError):
        _ask(anthropic_client)

    assert _ask(anthropic_client) == "ok"


def test_stream_error_event_raises_api_status_error(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """An `event: error` mid-stream raises APIStatusError (status 200) carrying the error."""
    server.script(MODEL, StreamErrorEvent(after_chunks=1, reply=Reply("abcdef", chunk_size=2)))
    text: list[str] = []

    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        anthropic_client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream,
    ):
        text.extend(stream.text_stream)

    assert text == ["ab"]
    assert caught.value.status_code == 200
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_stream_error_event_without_stream_is_a_529(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A non-streaming request scripted with StreamErrorEvent gets a 529 OverloadedError."""
    server.script(MODEL, StreamErrorEvent())

    with pytest.raises(anthropic.OverloadedError):
        _ask(anthropic_client)


def test_stream_cut_ends_without_message_stop(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A cut stream ends without error or message_stop; the helper's final stop_reason is None.

    This pins the SDK's behaviour: a truncated answer is not an exception, so callers
    must check the stop reason themselves.
    """
    server.script(MODEL, StreamCut(after_chunks=2, reply=Reply("abcdefgh", chunk_size=2)))
    events: list[RawMessageStreamEvent] = []

    with anthropic_client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        events.extend(event for event in stream if event.type != "text")
        final = stream.get_final_message()

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    assert final.stop_reason is None
    assert isinstance(final.content[0], TextBlock)
    assert final.content[0].text == "abcd"


def test_incomplete_transfer_raises_raw_httpx_error(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """Mid-stream transport errors escape the Anthropic SDK unwrapped, as httpx2 errors."""
    server.script(MODEL, StreamCut(after_chunks=1, incomplete_transfer=True))

    with pytest.raises(httpx2.RemoteProtocolError):
        list(
            anthropic_client.messages.create(
                model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
            )
        )


def test_hang_mid_stream_raises_raw_read_timeout(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A stream that stalls after one delta escapes the SDK as httpx2.ReadTimeout, unwrapped."""
    server.script(MODEL, Hang(5, after_chunks=1, reply=Reply("abcdef", chunk_size=2)))
    text: list[str] = []

    with (
        pytest.raises(httpx2.ReadTimeout),
        anthropic_client.with_options(timeout=0.2).messages.stream(
            model=MODEL, max_tokens=50, messages=MESSAGES
        ) as stream,
    ):
        text.extend(stream.text_stream)

    assert text == ["ab"]


def test_error_before_a_stream_raises_on_create(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """An HTTP error scripted for a streaming request raises from create(stream=True)."""
    server.script(MODEL, overloaded())

    with pytest.raises(anthropic.OverloadedError):
        anthropic_client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, stream=True)


async def test_async_stream_error_event(
    server: FakeLLMServer, async_anthropic_client: anthropic.AsyncAnthropic
) -> None:
    """The async SDK raises APIStatusError for a mid-stream error event too."""
    server.script(MODEL, StreamErrorEvent(after_chunks=0))

    stream = await async_anthropic_client.messages.create(
        model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
    )
    with pytest.raises(anthropic.APIStatusError):
        async for _ in stream:
            pass
    await stream.close()
