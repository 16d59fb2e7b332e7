"""A stream is complete only when the wire says so; HTTP 200 streams can still be failures."""

from __future__ import annotations

import json

import pytest

from reliable_llm import (
    ChatRequest,
    ContentPolicyError,
    LLMManager,
    Message,
    ProviderConnectionError,
    RetryPolicy,
    ServerError,
    StreamAccumulator,
    StreamInterruptedError,
    TimeoutPolicy,
)
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, Transcript

MODEL = "gpt-test"
REQUEST = ChatRequest((Message.user("hi"),))


def _sse(*events: str) -> Transcript:
    return Transcript("".join(f"{event}\n\n" for event in events).encode())


def _chunk(delta: dict[str, object], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return "data: " + json.dumps({**body, "choices": [choice]})


def _provider(server: FakeLLMServer, closing: list[SDKProvider]) -> OpenAIProvider:
    provider = OpenAIProvider(MODEL, api_key="sk-test", base_url=server.openai_base_url)
    closing.append(provider)
    return provider


def _fold(provider: OpenAIProvider) -> str:
    acc = StreamAccumulator()
    for chunk in provider.stream(REQUEST):
        acc.add(chunk)
    return acc.response().text


@pytest.mark.parametrize("finish", ["abort", "", "unknown"])
def test_unknown_or_empty_finish_is_not_a_finish(
    finish: str, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """A stream whose only finish reason is unrecognised ended unfinished: a connection error."""
    server.script(MODEL, _sse(_chunk({"content": "Hel"}), _chunk({}, finish), "data: [DONE]"))
    with pytest.raises(ProviderConnectionError, match="ended before the answer finished"):
        _fold(_provider(server, closing))


def test_a_stream_without_any_finish_is_interrupted(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Text and [DONE] but no finish reason: the answer cannot be trusted to be whole."""
    server.script(MODEL, _sse(_chunk({"content": "Half an ans"}), "data: [DONE]"))
    with pytest.raises(ProviderConnectionError):
        _fold(_provider(server, closing))


def test_keep_alive_comments_and_usage_chunk_do_not_disturb_the_answer(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """OpenRouter comments between events and a usage-only chunk fold into a normal answer."""
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    usage_chunk = {**usage, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    server.script(
        MODEL,
        _sse(
            ": OPENROUTER PROCESSING",
            _chunk({"role": "assistant", "content": ""}),
            ": OPENROUTER PROCESSING",
            _chunk({"content": "Hi!"}),
            _chunk({}, "stop"),
            "data: " + json.dumps(usage_chunk),
            "data: [DONE]",
        ),
    )
    assert _fold(_provider(server, closing)) == "Hi!"


def test_content_filter_finish_in_a_stream_is_a_content_policy_error(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Azure's filtered finish mid-answer is a ContentPolicyError, never a truncated answer."""
    server.script(
        MODEL, _sse(_chunk({"content": "Some"}), _chunk({}, "content_filter"), "data: [DONE]")
    )
    with pytest.raises(ContentPolicyError):
        _fold(_provider(server, closing))


def test_in_band_error_object_in_a_stream_is_a_server_error(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """OpenRouter's mid-stream error object (with finish_reason error) is a transient failure."""
    error = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    server.script(MODEL, _sse(_chunk({"content": "Par"}), "data: " + json.dumps(error)))
    with pytest.raises(ServerError, match="Provider disconnected"):
        _fold(_provider(server, closing))


def test_interrupted_after_text_is_stream_interrupted_and_not_cached(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """After text reached the caller, an unfinished stream raises with the partial text."""
    server.set_default(MODEL, _sse(_chunk({"content": "The answer is"}), "data: [DONE]"))
    manager = LLMManager(
        enable_caching=True,
        retry=RetryPolicy(max_retries=0),
        timeouts=TimeoutPolicy(total=30, per_attempt=10),
        clock=FakeClock(),
    )
    manager.register_model("primary", _provider(server, closing))
    manager.register_model("backup", ScriptedModel(default="unused"))
    manager.set_fallback_chain(["backup"])

    for _ in range(2):
        with pytest.raises(StreamInterruptedError) as caught:
            list(manager.stream("hi"))
        assert caught.value.partial_text == "The answer is"

    assert server.request_count(MODEL) == 2  # the interrupted answer was not cached


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_refusal_is_text_with_a_refusal_finish_either_way(
    kind: str, streamed: bool, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """A refusal is returned as its text with finish_reason refusal, streamed or not."""
    provider: SDKProvider
    if kind == "openai":
        provider = _provider(server, closing)
    else:
        provider = AnthropicProvider(MODEL, api_key="k", base_url=server.anthropic_base_url)
        closing.append(provider)
    server.script(MODEL, Reply("I can't help with that.", finish_reason="refusal", chunk_size=4))

    if streamed:
        acc = StreamAccumulator()
        for chunk in provider.stream(REQUEST):
            acc.add(chunk)
        response = acc.response()
    else:
        response = provider.complete(REQUEST)

    assert (response.text, response.finish_reason) == ("I can't help with that.", "refusal")
