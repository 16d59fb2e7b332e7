"""Deadlines are wall-clock and ours: a retry that does not fit hands over to the next model,
and slow models (blocking callables, trickling HTTP bodies) are cut off on a real clock."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from drivers import Ask

from reliable_llm import (
    AllModelsFailedError,
    FailureReason,
    LLMManager,
    ProviderTimeoutError,
    ServerError,
    TimeoutPolicy,
)
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


def test_a_retry_that_does_not_fit_hands_over_to_the_backup(
    ask: Ask, manager: LLMManager, clock: FakeClock
) -> None:
    """Primary always 503, timeout=5: after the retries that fit, the backup answers."""
    primary = ScriptedModel(default=ServerError("503", status_code=503))
    manager.register_model("primary", primary)
    manager.register_model("backup", ScriptedModel(default="from backup"))
    manager.set_fallback_chain(["backup"])
    response = ask("hi", timeout=5)
    assert (response.text, response.model) == ("from backup", "backup")
    assert primary.call_count == 3  # at t=0, 1 and 3; the next wait (4 s) does not fit in 2 s
    assert clock.monotonic() == pytest.approx(3.0)
    by_reason = manager.get_metrics()["fallbacks"]["by_reason"]
    assert by_reason == {FailureReason.BACKOFF_EXCEEDS_DEADLINE.value: 1}


def test_deadline_exceeded_means_the_total_deadline(manager: LLMManager, clock: FakeClock) -> None:
    """Only a spent total deadline ends the route, and the error says so."""
    hang = Reply("late", latency=float("inf"))
    manager.register_model("slow", ScriptedModel(default=hang, clock=clock))
    manager.register_model("backup", ScriptedModel(default="unreached"))
    manager.set_fallback_chain(["backup"])
    with pytest.raises(AllModelsFailedError) as caught:
        manager.chat("hi", timeout=2)
    assert caught.value.deadline_exceeded
    assert isinstance(caught.value.errors[0], ProviderTimeoutError)


def test_a_scripted_hang_is_cut_at_the_per_attempt_timeout_on_a_fake_clock(
    ask: Ask, clock: FakeClock
) -> None:
    """A reply slower than per_attempt times out at per_attempt; the backup then answers."""
    manager = LLMManager(
        clock=clock, random=lambda: 0.0, max_retries=0, timeouts=TimeoutPolicy(10, 2)
    )
    manager.register_model(
        "hung", ScriptedModel(default=Reply("late", latency=float("inf")), clock=clock)
    )
    manager.register_model("backup", ScriptedModel(default="on time"))
    manager.set_fallback_chain(["backup"])
    response = manager.chat("hi")
    assert response.model == "backup"
    assert clock.monotonic() == pytest.approx(2.0)
    assert isinstance(response.attempts[0].error, ProviderTimeoutError)


# -- real clock: short and bounded ------------------------------------------------------------

_REAL = TimeoutPolicy(total=3.0, per_attempt=0.5)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets abandoned slow calls finish when the test ends."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_slow_plain_callable_is_cut_off(asynchronous: bool, release: threading.Event) -> None:
    """A sync callable taking 6 s is abandoned after per_attempt; the backup answers at once."""
    manager = LLMManager(max_retries=0, enable_caching=False, timeouts=_REAL)

    def slow(prompt: str, **kwargs: Any) -> str:
        release.wait(6)
        return "late primary"

    manager.register_model("primary", slow)
    manager.register_model("backup", lambda prompt, **kw: "backup")
    manager.set_fallback_chain(["backup"])
    start = time.monotonic()
    text = asyncio.run(manager.agenerate("hi")) if asynchronous else manager.generate("hi")
    elapsed = time.monotonic() - start
    assert text == "backup"
    assert 0.45 <= elapsed < 2.5  # not the 6 s the primary takes


class _TricklingServer:
    """An HTTP server that sends a valid chat completion a few bytes every ``gap`` seconds."""

    BODY = (
        b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"slow"},'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,'
        b'"total_tokens":2}}'
    )

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(self.BODY)
            )
            try:
                conn.sendall(head)
                for i in range(0, len(self.BODY), 8):
                    if self.stop.wait(self.gap):
                        return
                    conn.sendall(self.BODY[i : i + 8])
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_trickling_body_is_bounded_by_the_attempt_deadline(asynchronous: bool) -> None:
    """A body sent a few bytes every 0.4 s fails at per_attempt=1, not after it trickles in."""
    from reliable_llm.providers import OpenAIProvider

    server = _TricklingServer(gap=0.4)
    try:
        manager = LLMManager(max_retries=0, enable_caching=False, timeouts=TimeoutPolicy(1.5, 1.0))
        provider = OpenAIProvider("m", base_url=server.url, api_key="sk-test")
        manager.register_model("m", provider)

        async def achat() -> None:
            try:
                await manager.achat("hi")
            finally:
                await provider.aclose()

        start = time.monotonic()
        with pytest.raises(AllModelsFailedError) as caught:
            if asynchronous:
                asyncio.run(achat())
            else:
                manager.chat("hi")
        elapsed = time.monotonic() - start
    finally:
        provider.close()
        server.close()
    assert isinstance(caught.value.errors[0], ProviderTimeoutError)
    assert 0.9 <= elapsed < 2.5  # not the ~9 s the body takes to trickle in
