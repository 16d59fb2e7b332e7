"""Each scripted fault surfaces in the OpenAI SDK as the exception a real outage raises."""

from __future__ import annotations

import json
import time

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    Hang,
    HTTPError,
    MalformedJSON,
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

MODEL = "gpt-4o"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def _ask(client: openai.OpenAI) -> str | None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    return completion.choices[0].message.content


def test_rate_limit_then_ok_is_one_request_per_call(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A 429 raises RateLimitError with a readable retry-after; each call is one request."""
    server.script(MODEL, rate_limited(retry_after="2"), Reply("after the limit"))

    with pytest.raises(openai.RateLimitError) as caught:
        _ask(openai_client)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    assert server.request_count(MODEL) == 1

    assert _ask(openai_client) == "after the limit"
    assert server.request_count(MODEL) == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (server_error(), openai.InternalServerError),
        (server_error(503), openai.InternalServerError),
        (overloaded(), openai.InternalServerError),
        (unauthorized(), openai.AuthenticationError),
        (not_found(), openai.NotFoundError),
        (HTTPError(403), openai.PermissionDeniedError),
        (HTTPError(422), openai.UnprocessableEntityError),
    ],
)
def test_http_errors_map_to_sdk_exceptions(
    server: FakeLLMServer,
    openai_client: openai.OpenAI,
    fault: HTTPError,
    expected: type[openai.APIStatusError],
) -> None:
    """Each HTTP error fault raises the SDK exception class of its status."""
    server.script(MODEL, fault)

    with pytest.raises(expected) as caught:
        _ask(openai_client)

    assert caught.value.status_code == fault.status
    assert isinstance(caught.value.body, dict)
    assert isinstance(caught.value.body["message"], str)
    assert caught.value.request_id is not None


def test_not_found_names_the_model(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """The default 404 body is OpenAI's model_not_found naming the requested model."""
    server.script(MODEL, not_found())

    with pytest.raises(openai.NotFoundError) as caught:
        _ask(openai_client)

    assert caught.value.code == "model_not_found"
    assert f"`{MODEL}`" in caught.value.message


def test_context_length_exceeded(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """context_length_exceeded raises BadRequestError with that code and param messages."""
    server.script(MODEL, context_length_exceeded())

    with pytest.raises(openai.BadRequestError) as caught:
        _ask(openai_client)

    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"
    assert "maximum context length" in caught.value.message


def test_custom_error_body_and_headers(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """An explicit body and headers are sent verbatim."""
    body = {"error": {"message": "custom", "type": "weird", "param": None, "code": "x1"}}
    server.script(MODEL, HTTPError(418, body=body, headers={"x-custom": "yes"}))

    with pytest.raises(openai.APIStatusError) as caught:
        _ask(openai_client)

    assert caught.value.status_code == 418
    assert caught.value.body == body["error"]
    assert caught.value.response.headers["x-custom"] == "yes"


def test_hang_times_out_quickly_and_stop_is_not_held_up(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """Hang(5) with a 0.2 s client timeout raises APITimeoutError in about 0.2 s."""
    server.script(MODEL, Hang(5))
    started = time.monotonic()

    with pytest.raises(openai.APITimeoutError):
        openai_client.with_options(timeout=0.2).chat.completions.create(
            model=MODEL, messages=MESSAGES
        )

    assert time.monotonic() - started < 2
    assert _ask(openai_client) == "ok"  # other requests are served meanwhile


def test_hang_mid_stream_times_out_while_iterating(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """Hang(after_chunks=1) sends one delta, then the read times out with APITimeoutError."""
    server.script(MODEL, Hang(5, after_chunks=1, reply=Reply("abcdefgh", chunk_size=2)))
    received: list[str] = []

    stream = openai_client.with_options(timeout=0.2).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APITimeoutError), stream:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "ab"


def test_reset_connection_raises_api_connection_error(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A connection reset before any response raises APIConnectionError (not a timeout)."""
    server.script(MODEL, ResetConnection())

    with pytest.raises(openai.APIConnectionError) as caught:
        _ask(openai_client)

    assert not isinstance(caught.value, openai.APITimeoutError)
    assert server.request_count(MODEL) == 1
    assert _ask(openai_client) == "ok"


def test_malformed_json_raises_json_decode_error(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A 200 with a broken JSON body surfaces from the SDK as a bare json.JSONDecodeError."""
    server.script(MODEL, MalformedJSON(), MalformedJSON())

    with pytest.raises(json.JSONDecodeError):
        _ask(openai_client)
    with pytest.raises(json.JSONDecodeError):
        list(openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))


def test_stream_error_event_raises_api_error_mid_stream(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """An in-band error event raises APIError after the deltas already received."""
    server.script(MODEL, StreamErrorEvent(after_chunks=2, reply=Reply("abcdefgh", chunk_size=2)))
    received: list[str] = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in openai_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "abcd"
    assert not isinstance(caught.value, openai.APIStatusError)  # the status was 200
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"


def test_stream_error_event_without_stream_is_a_500(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A non-streaming request scripted with StreamErrorEvent gets an HTTP 500."""
    server.script(MODEL, StreamErrorEvent())

    with pytest.raises(openai.InternalServerError):
        _ask(openai_client)


def test_stream_cut_ends_without_finish_reason(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A cut stream ends silently: the deltas so far, no finish_reason and no error."""
    server.script(MODEL, StreamCut(after_chunks=3, reply=Reply("abcdefgh", chunk_size=2)))

    chunks = list(
        openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "abcdef"
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert _ask(openai_client) == "ok"  # the pool recovers on a fresh connection


def test_stream_cut_with_incomplete_transfer_raises_connection_error(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A cut inside chunked framing raises APIConnectionError while iterating."""
    server.script(MODEL, StreamCut(after_chunks=1, incomplete_transfer=True))

    with pytest.raises(openai.APIConnectionError):
        list(openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))


def test_stream_cut_without_stream_truncates_the_body(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A non-streaming request scripted with StreamCut gets half a body: APIConnectionError."""
    server.script(MODEL, StreamCut())

    with pytest.raises(openai.APIConnectionError):
        _ask(openai_client)


async def test_async_faults(server: FakeLLMServer, async_openai_client: openai.AsyncOpenAI) -> None:
    """The async SDK sees the same exception types: 429, reset, then success."""
    server.script(MODEL, rate_limited(retry_after="1"), ResetConnection(), Reply("fine"))

    with pytest.raises(openai.RateLimitError):
        await async_openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.APIConnectionError):
        await async_openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    completion = await async_openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == "fine"
    assert server.request_count(MODEL) == 3
