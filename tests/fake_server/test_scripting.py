"""Scripting steps, the request log and the public surface of the fake server."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from reliable_llm.testing import fake_server
from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    Hang,
    HTTPError,
    Reply,
    StreamCut,
    StreamErrorEvent,
    ToolCallSpec,
    server_error,
)

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def _ask(client: openai.OpenAI, model: str) -> str | None:
    return client.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content


def test_public_api_is_pinned() -> None:
    """The package exports exactly this sorted __all__."""
    assert fake_server.__all__ == sorted(fake_server.__all__)
    assert set(fake_server.__all__) == {
        "FakeLLMServer",
        "Fault",
        "HTTPError",
        "Hang",
        "MalformedJSON",
        "ProtocolName",
        "RecordedRequest",
        "Reply",
        "ResetConnection",
        "Responder",
        "SlowWire",
        "Step",
        "StreamCut",
        "StreamErrorEvent",
        "ToolCallSpec",
        "Transcript",
        "anthropic_pings",
        "context_length_exceeded",
        "keep_alive_comments",
        "not_found",
        "overloaded",
        "rate_limited",
        "run_fake_server_cli",
        "server_error",
        "slow_headers",
        "trickled_body",
        "unauthorized",
    }


def test_steps_are_consumed_in_order_then_defaults_apply(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """Queued steps answer in order; then the model default, and other models get "ok"."""
    server.script("a", Reply("first"), Reply("second"))
    server.set_default("a", Reply("a-default"))

    answers = [_ask(openai_client, "a") for _ in range(4)]

    assert answers == ["first", "second", "a-default", "a-default"]
    assert _ask(openai_client, "b") == "ok"
    assert server.pending("a") == 0


def test_global_default(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """set_default(None, ...) changes what every unscripted model answers."""
    server.set_default(None, Reply("everyone"))

    assert _ask(openai_client, "any-model") == "everyone"


def test_pending_counts_unconsumed_steps(server: FakeLLMServer) -> None:
    """pending() counts queued steps per model and in total."""
    server.script("a", Reply("1"), server_error())
    server.script("b", Reply("2"))

    assert (server.pending("a"), server.pending("b"), server.pending()) == (2, 1, 3)


def test_reset_clears_scripts_defaults_and_log(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """reset() forgets scripts, defaults and recorded requests."""
    server.script("a", Reply("scripted"))
    server.set_default(None, Reply("global"))
    _ask(openai_client, "x")

    server.reset()

    assert server.requests == []
    assert server.pending() == 0
    assert _ask(openai_client, "a") == "ok"


def test_request_log_records_what_was_sent(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """Each request is logged with method, path, lower-cased headers, body, model, protocol."""
    _ask(openai_client, "gpt-4o")

    (request,) = server.requests
    assert (request.method, request.path, request.protocol) == (
        "POST",
        "/v1/chat/completions",
        "openai",
    )
    assert request.model == "gpt-4o"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": "gpt-4o", "messages": MESSAGES}
    assert request.stream is False


def test_request_log_marks_streaming_requests(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A streamed request is logged with stream True and its stream_options."""
    list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True))

    (request,) = server.requests
    assert request.stream is True
    assert request.body is not None
    assert request.body["stream"] is True


def test_request_count_per_model(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """request_count counts all requests, or only those of one model."""
    for model in ("a", "b", "a"):
        _ask(openai_client, model)

    assert (server.request_count(), server.request_count("a"), server.request_count("b")) == (
        3,
        2,
        1,
    )


def test_script_rejects_non_steps(server: FakeLLMServer) -> None:
    """Scripting something that is not a Reply or Fault raises TypeError at once."""
    with pytest.raises(TypeError):
        server.script("a", "not a step")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Reply(chunk_size=0),
        lambda: Reply(latency=-1),
        lambda: Reply(usage=(-1, 0)),
        lambda: HTTPError(200),
        lambda: ToolCallSpec("f", {"when": object()}),
        lambda: Hang(-1),
        lambda: StreamCut(after_chunks=-1),
        lambda: StreamErrorEvent(after_chunks=-1),
    ],
)
def test_invalid_steps_fail_at_construction(make: Callable[[], object]) -> None:
    """Nonsensical step parameters raise ValueError or TypeError when the step is built."""
    with pytest.raises((ValueError, TypeError)):
        make()


def test_a_step_that_cannot_be_sent_becomes_a_500(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """If the server cannot render a step, the client gets a 500 naming the problem."""
    server.script("m", HTTPError(418, body={"unserialisable": object()}))

    with pytest.raises(openai.InternalServerError) as caught:
        _ask(openai_client, "m")

    assert "fake server error" in caught.value.message
    assert _ask(openai_client, "m") == "ok"


def test_a_fault_can_be_the_default(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """set_default with a fault makes every unscripted request for that model fail."""
    server.set_default("down", server_error(503))

    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            _ask(openai_client, "down")
    assert server.request_count("down") == 3


def test_scripting_from_many_threads(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """Threads scripting and calling their own models concurrently each see their own order."""

    def worker(index: int) -> list[str | None]:
        model = f"model-{index}"
        server.script(model, *(Reply(f"{model}:{n}") for n in range(10)))
        return [_ask(openai_client, model) for _ in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))

    assert results == [[f"model-{i}:{n}" for n in range(10)] for i in range(8)]
    assert server.request_count() == 80


def test_insufficient_quota_is_a_429_with_its_own_type(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """HTTPError(429, code="insufficient_quota") renders OpenAI's quota error, not a rate limit."""
    server.script("m", HTTPError(429, code="insufficient_quota"))

    with pytest.raises(openai.RateLimitError) as caught:
        _ask(openai_client, "m")

    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert "quota" in caught.value.message


def test_repr_shows_where_it_listens() -> None:
    """repr() shows the base URL while running and says when it is not."""
    server = FakeLLMServer()
    assert repr(server) == "<FakeLLMServer not running>"
    with server:
        assert repr(server) == f"<FakeLLMServer {server.base_url}>"


def test_a_responder_answers_from_the_request_then_defers_to_the_script() -> None:
    """set_responder computes answers from each request; returning None uses the script."""
    import openai

    from reliable_llm.testing.fake_server import FakeLLMServer, RecordedRequest, Reply

    def echo(request: RecordedRequest) -> Reply | None:
        assert request.body is not None
        text = request.body["messages"][-1]["content"]
        return None if text == "script" else Reply(f"echo: {text}")

    with FakeLLMServer() as server:
        server.set_responder(echo)
        server.script("m", Reply("from the script"))
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
        try:

            def ask(text: str) -> str | None:
                completion = client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": text}]
                )
                return completion.choices[0].message.content

            assert ask("hello") == "echo: hello"
            assert ask("script") == "from the script"
            server.reset()
            assert ask("hello") == "ok"
        finally:
            client.close()
