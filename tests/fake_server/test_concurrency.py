"""The fake holds 1,000 concurrent connections, each with a slow reply."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Iterator

import openai
import pytest

from reliable_llm.testing.fake_server import FakeLLMServer, Reply

CONCURRENCY = 1_000
CLIENTS = 20


@pytest.fixture
def enough_file_descriptors() -> Iterator[None]:
    """Raise the soft descriptor limit: client and server sockets share this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * CONCURRENCY + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is below {wanted}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("enough_file_descriptors")
async def test_one_thousand_concurrent_requests(server: FakeLLMServer) -> None:
    """1,000 concurrent AsyncOpenAI requests with 0.2 s latency all succeed, all overlapping."""
    server.set_default("gpt-4o", Reply("pong", latency=0.2))
    # Spread over several clients: httpcore's pool does work quadratic in its open
    # connections, which made one 1,000-connection client the slowest part of this test.
    # verify=False only skips loading the CA bundle; this is plain HTTP to 127.0.0.1.
    clients = [
        openai.AsyncOpenAI(
            base_url=server.openai_base_url,
            api_key="sk-test",
            max_retries=0,
            timeout=30,
            http_client=openai.DefaultAsyncHttpxClient(verify=False),
        )
        for _ in range(CLIENTS)
    ]
    try:
        started = time.monotonic()
        completions = await asyncio.gather(
            *(
                clients[i % CLIENTS].chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"ping {i}"}]
                )
                for i in range(CONCURRENCY)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        await asyncio.gather(*(client.close() for client in clients))

    assert [c.choices[0].message.content for c in completions] == ["pong"] * CONCURRENCY
    assert server.request_count("gpt-4o") == CONCURRENCY
    assert elapsed < 30  # the SDK's own per-request cost dominates; 0.2 s latency overlaps


@pytest.mark.usefixtures("enough_file_descriptors")
async def test_one_thousand_connections_open_at_once(server: FakeLLMServer) -> None:
    """1,000 connections are open at the same time and each then gets its slow reply."""
    server.set_default("m", Reply("pong", latency=0.2))
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: fake\r\nconnection: close\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    streams = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", server.port) for _ in range(CONCURRENCY))
    )
    try:
        # The count lives on the server's thread, so poll it rather than await an event.
        for _ in range(1_000):
            if server.active_connections == CONCURRENCY:
                break
            await asyncio.sleep(0.01)
        assert server.active_connections == CONCURRENCY

        for _, writer in streams:
            writer.write(request)
        responses = await asyncio.gather(*(reader.read() for reader, _ in streams))
    finally:
        for _, writer in streams:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for _, writer in streams))

    assert all(r.startswith(b"HTTP/1.1 200 OK\r\n") and b'"pong"' in r for r in responses)
    assert server.peak_connections == CONCURRENCY
    assert server.request_count("m") == CONCURRENCY
