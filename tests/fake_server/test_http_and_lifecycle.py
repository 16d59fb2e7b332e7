"""The HTTP layer (keep-alive, validation, routing) and the server's lifecycle."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from reliable_llm.testing.fake_server import FakeLLMServer, Hang, Reply

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def _ask(client: openai.OpenAI, model: str) -> str | None:
    return client.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content


@pytest.fixture
def conn(server: FakeLLMServer) -> Iterator[http.client.HTTPConnection]:
    """A raw keep-alive HTTP connection to the fake server."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    yield connection
    connection.close()


def _post(
    conn: http.client.HTTPConnection, path: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request(
        "POST", path, body=raw, headers={"content-type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_keep_alive_reuses_one_connection(
    server: FakeLLMServer, conn: http.client.HTTPConnection
) -> None:
    """Several requests are answered on one keep-alive connection."""
    body = {"model": "m", "messages": MESSAGES}
    results = [_post(conn, "/v1/chat/completions", body)[0] for _ in range(3)]

    assert results == [200, 200, 200]
    assert server.peak_connections == 1


def test_chunked_request_body_is_accepted(conn: http.client.HTTPConnection) -> None:
    """A request body sent with chunked transfer encoding is decoded."""
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    conn.request(
        "POST", "/v1/chat/completions", body=iter([body[:10], body[10:]]), encode_chunked=True
    )
    response = conn.getresponse()

    assert response.status == 200
    assert json.loads(response.read())["choices"][0]["message"]["content"] == "ok"


@pytest.mark.parametrize(
    ("path", "body", "expected_message"),
    [
        ("/v1/chat/completions", b"{not json", "could not parse the JSON body"),
        ("/v1/chat/completions", {"messages": MESSAGES}, "model"),
        ("/v1/chat/completions", {"model": "m"}, "messages"),
        ("/v1/messages", {"model": "m", "messages": MESSAGES}, "max_tokens: Field required"),
    ],
)
def test_malformed_requests_get_provider_style_400(
    server: FakeLLMServer,
    conn: http.client.HTTPConnection,
    path: str,
    body: object,
    expected_message: str,
) -> None:
    """Bad JSON or missing fields get a 400 in the protocol's error shape; no step is used."""
    server.script("m", Reply("unused"))

    status, payload = _post(conn, path, body)

    assert status == 400
    error = payload["error"]
    assert isinstance(error, dict)
    assert expected_message in error["message"]
    assert error["type"] == "invalid_request_error"
    assert server.pending("m") == 1


def test_unknown_path_is_404_json(server: FakeLLMServer, conn: http.client.HTTPConnection) -> None:
    """Unknown paths get a JSON 404 and are still logged, with no protocol."""
    status, payload = _post(conn, "/v1/embeddings", {"model": "m", "input": "x"})

    assert status == 404
    assert payload["error"] == {
        "message": "Unknown request URL: POST /v1/embeddings.",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }
    assert server.requests[0].protocol is None


def test_unknown_path_speaks_anthropic_to_anthropic_clients(
    conn: http.client.HTTPConnection,
) -> None:
    """A 404 for a request with anthropic-version uses Anthropic's error shape."""
    status, payload = _post(conn, "/v1/nothing", {}, headers={"anthropic-version": "2023-06-01"})

    assert status == 404
    assert payload["type"] == "error"


def test_wrong_method_is_405(conn: http.client.HTTPConnection) -> None:
    """GET on a completion endpoint is 405 Method Not Allowed."""
    conn.request("GET", "/v1/chat/completions")
    response = conn.getresponse()
    response.read()

    assert response.status == 405


def test_health_endpoint(conn: http.client.HTTPConnection) -> None:
    """GET /healthz answers 200 so scripts can wait for the server."""
    conn.request("GET", "/healthz")
    response = conn.getresponse()

    assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})


def test_garbage_request_line_is_400(server: FakeLLMServer) -> None:
    """A request line that is not HTTP gets a 400 and the connection closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        reply = sock.recv(4096)

    assert reply.startswith(b"HTTP/1.1 400 ")


def test_latency_does_not_block_other_requests(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A slow reply for one model does not delay another model's request."""
    server.script("slow", Reply("slow", latency=0.5))
    slow = threading.Thread(target=_ask, args=(openai_client, "slow"))
    slow.start()
    time.sleep(0.05)

    started = time.monotonic()
    assert _ask(openai_client, "fast") == "ok"
    assert time.monotonic() - started < 0.25
    slow.join()


def test_lifecycle() -> None:
    """URLs need a running server; start twice fails; stop is idempotent; restart works."""
    server = FakeLLMServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url

    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.openai_base_url == f"{server.base_url}/v1"
        assert server.anthropic_base_url == server.base_url
        assert server.azure_endpoint == server.base_url
        with pytest.raises(RuntimeError):
            server.start()

    server.stop()
    with pytest.raises(RuntimeError):
        _ = server.port

    with server:  # a stopped server can be started again
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()


def test_stop_is_not_held_up_by_a_hanging_request() -> None:
    """stop() returns promptly while a Hang(30) request is still open."""
    server = FakeLLMServer().start()
    server.script("m", Hang(30))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    while server.request_count() == 0:
        time.sleep(0.01)

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 1
    assert sock.recv(1) == b""  # the server closed the connection without answering
    sock.close()


def test_bind_failure_is_raised_from_start() -> None:
    """start() raises OSError when the port is taken."""
    with FakeLLMServer() as first:
        second = FakeLLMServer(port=first.port)
        with pytest.raises(OSError):
            second.start()
