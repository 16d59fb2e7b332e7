"""Slow-wire faults: right answers that arrive too slowly for a per-read timeout to notice."""

from __future__ import annotations

import json
import socket
import time

import anthropic
import httpx
import openai
import pytest

from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    Reply,
    SlowWire,
    anthropic_pings,
    keep_alive_comments,
    slow_headers,
    trickled_body,
)

MODEL = "gpt-4o"
CLAUDE = "claude-test"
OPENAI_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
ANTHROPIC_BODY = {
    "model": CLAUDE,
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}


def _raw_stream(server: FakeLLMServer, path: str, body: dict[str, object]) -> bytes:
    """The exact body bytes of a streamed response (chunked framing removed by httpx)."""
    headers = {"anthropic-version": "2023-06-01"} if path == "/v1/messages" else {}
    with (
        httpx.Client(base_url=server.base_url, timeout=5) as client,
        client.stream("POST", path, json={**body, "stream": True}, headers=headers) as response,
    ):
        return b"".join(response.iter_bytes())


def test_trickled_body_outlasts_a_read_timeout_yet_arrives_whole(
    server: FakeLLMServer,
) -> None:
    """Each trickled write comes within the SDK's read timeout, so the slow call succeeds."""
    server.script(MODEL, trickled_body(Reply("slow but whole"), bytes_per_write=64, interval=0.04))
    with openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=0.2
    ) as client:
        started = time.monotonic()
        completion = client.chat.completions.create(model=MODEL, messages=[])
        elapsed = time.monotonic() - started

    assert completion.choices[0].message.content == "slow but whole"
    assert elapsed > 0.2  # longer than the read timeout: only a whole-call deadline bounds it


def test_trickled_stream_keeps_every_event(server: FakeLLMServer) -> None:
    """A trickled stream still parses into the scripted text, chunk by chunk."""
    server.script(MODEL, trickled_body(Reply("trickled stream"), bytes_per_write=7, interval=0))
    with openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as client:
        stream = client.chat.completions.create(model=MODEL, messages=[], stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "trickled stream"


def test_slow_headers_send_the_status_line_first(server: FakeLLMServer) -> None:
    """The status line arrives at once; the headers only after the delay."""
    server.script(MODEL, slow_headers(0.3))
    payload = json.dumps(OPENAI_BODY).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(payload), payload)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()  # before sending: the server's delay cannot start earlier
        sock.sendall(request)
        first = sock.recv(65536)
        first_at = time.monotonic() - started
        rest = b""
        while data := sock.recv(65536):
            rest += data
        done_at = time.monotonic() - started

    assert first == b"HTTP/1.1 200 OK\r\n"
    assert first_at < 0.25
    assert done_at >= 0.3
    assert b"This answer arrives over a slow wire." in rest


def test_keep_alive_comments_precede_the_first_event(server: FakeLLMServer) -> None:
    """OpenRouter-style comments come before any data line, and SDKs skip them."""
    comment = "OPENROUTER PROCESSING"
    server.script(MODEL, keep_alive_comments(3, Reply("after comments"), comment=comment))
    raw = _raw_stream(server, "/v1/chat/completions", OPENAI_BODY)
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n" * 3 + b"data: ")
    assert raw.count(b": OPENROUTER PROCESSING\n\n") == 3

    server.script(MODEL, keep_alive_comments(2, Reply("after comments"), comment=comment))
    with openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as client:
        stream = client.chat.completions.create(model=MODEL, messages=[], stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "after comments"


def test_keep_alive_comments_between_events(server: FakeLLMServer) -> None:
    """With between_events, one comment separates every two events."""
    server.script(MODEL, keep_alive_comments(0, Reply("abcdef", chunk_size=2), between_events=True))
    raw = _raw_stream(server, "/v1/chat/completions", OPENAI_BODY)
    events = [part for part in raw.split(b"\n\n") if part]
    assert events[0].startswith(b"data: ")
    assert all(part == b": keep-alive" for part in events[1::2])
    assert all(part.startswith(b"data: ") for part in events[::2])
    assert events[-1] == b"data: [DONE]"


def test_keep_alive_gap_delays_the_first_event(server: FakeLLMServer) -> None:
    """Comments spaced by their interval keep the first event back that long."""
    server.script(MODEL, keep_alive_comments(3, interval=0.1))
    started = time.monotonic()
    raw = _raw_stream(server, "/v1/chat/completions", OPENAI_BODY)
    assert time.monotonic() - started >= 0.3
    assert raw.count(b": keep-alive\n\n") == 3


def test_anthropic_pings_come_before_the_first_text_delta(server: FakeLLMServer) -> None:
    """Scripted pings are sent ahead of the first token, on top of the usual one."""
    server.script(CLAUDE, anthropic_pings(3, Reply("pinged")))
    raw = _raw_stream(server, "/v1/messages", ANTHROPIC_BODY)
    before_text = raw.split(b"event: content_block_delta")[0]
    assert before_text.count(b'event: ping\ndata: {"type":"ping"}\n\n') == 4
    assert b"event: ping" not in raw.split(b"event: content_block_delta", 1)[1]


def test_anthropic_pings_delay_the_answer_and_sdk_ignores_them(server: FakeLLMServer) -> None:
    """The SDK skips pings and assembles the text, after the pings' total gap."""
    server.script(CLAUDE, anthropic_pings(2, Reply("pinged"), interval=0.1))
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, timeout=5
    ) as client:
        started = time.monotonic()
        with client.messages.stream(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            text = stream.get_final_text()
    assert text == "pinged"
    assert time.monotonic() - started >= 0.2


def test_openai_stream_pings_are_comments(server: FakeLLMServer) -> None:
    """An OpenAI-protocol stream, which has no ping event, gets comments in their place."""
    server.script(MODEL, anthropic_pings(2))
    raw = _raw_stream(server, "/v1/chat/completions", OPENAI_BODY)
    assert raw.count(b": ping\n\n") == 2


def test_non_streaming_request_waits_out_the_preamble(server: FakeLLMServer) -> None:
    """A JSON answer cannot carry comments, so it waits as long as they would take."""
    server.script(MODEL, keep_alive_comments(2, Reply("late json"), interval=0.1))
    with openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as client:
        started = time.monotonic()
        completion = client.chat.completions.create(model=MODEL, messages=[])
        elapsed = time.monotonic() - started
    assert completion.choices[0].message.content == "late json"
    assert elapsed >= 0.2


def test_slow_wire_connection_is_reused_cleanly(server: FakeLLMServer) -> None:
    """After a trickled answer, the next request on the same connection is answered normally."""
    server.script(MODEL, trickled_body(Reply("first"), bytes_per_write=9, interval=0), Reply("2nd"))
    with openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as client:
        answers = [
            client.chat.completions.create(model=MODEL, messages=[]).choices[0].message.content
            for _ in range(2)
        ]
    assert answers == ["first", "2nd"]
    assert server.peak_connections == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"header_delay": -1},
        {"trickle_bytes": -1},
        {"trickle_interval": -0.1},
        {"keep_alives": -1},
        {"pings": -2},
        {"gap": -1},
        {"keep_alive_comment": "two\nlines"},
    ],
)
def test_slow_wire_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    """Negative delays or counts, and multi-line comments, raise ValueError at once."""
    with pytest.raises(ValueError, match="SlowWire"):
        SlowWire(**kwargs)  # type: ignore[arg-type]


def test_trickled_body_needs_at_least_one_byte() -> None:
    """bytes_per_write below one is refused."""
    with pytest.raises(ValueError, match="bytes_per_write"):
        trickled_body(bytes_per_write=0)
