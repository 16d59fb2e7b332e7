"""The six inputs of issue 10, each over HTTP through the official SDKs and the manager."""

from __future__ import annotations

import json

import pytest

from reliable_llm import (
    AllModelsFailedError,
    ContextWindowExceededError,
    LLMManager,
    RetryPolicy,
    StreamAccumulator,
    TimeoutPolicy,
    ToolCall,
)
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer, HTTPError, Reply, Transcript

MODEL = "gpt-test"


def _sse(*chunks: dict[str, object]) -> Transcript:
    """An OpenAI-style stream of ``chunks`` ending with ``[DONE]``."""
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return Transcript(body.encode())


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _call(index: int, id: str | None, name: str | None, arguments: str) -> dict[str, object]:
    call: dict[str, object] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    if name is not None:
        call["function"] = {"name": name, "arguments": arguments}
    return {"tool_calls": [call]}


def _manager(
    server: FakeLLMServer, closing: list[SDKProvider], *, anthropic: bool = False
) -> LLMManager:
    primary: SDKProvider
    if anthropic:
        primary = AnthropicProvider(
            "claude-test", api_key="sk-ant-test", base_url=server.anthropic_base_url
        )
    else:
        primary = OpenAIProvider(MODEL, api_key="sk-test", base_url=server.openai_base_url)
    closing.append(primary)
    manager = LLMManager(
        enable_caching=True,
        retry=RetryPolicy(max_retries=2, initial_delay=1.0, jitter=0.0),
        timeouts=TimeoutPolicy(total=60, per_attempt=10),
        clock=FakeClock(),
    )
    manager.register_model("primary", primary)
    manager.register_model("backup", ScriptedModel(default="backup answer"))
    manager.set_fallback_chain(["backup"])
    return manager


def _stream_text_and_calls(manager: LLMManager) -> tuple[str, tuple[ToolCall, ...]]:
    acc = StreamAccumulator()
    for chunk in manager.stream("weather and time?"):
        acc.add(chunk)
    response = acc.response()
    return response.text, response.tool_calls


def test_input_1_parallel_calls_sharing_index_zero_stay_apart(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Two calls both at index 0 with different ids are two calls, streamed and when cached."""
    server.script(
        MODEL,
        _sse(
            _chunk({"role": "assistant", "content": None}),
            _chunk(_call(0, "call_a", "get_weather", "")),
            _chunk(_call(0, None, None, '{"city": "Paris"}')),
            _chunk(_call(0, "call_b", "get_time", "")),
            _chunk(_call(0, None, None, '{"tz": "CET"}')),
            _chunk({}, "tool_calls"),
        ),
    )
    manager = _manager(server, closing)
    expected = (
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", '{"tz": "CET"}'),
    )

    assert _stream_text_and_calls(manager)[1] == expected
    cached = manager.chat("weather and time?")
    assert cached.cached
    assert cached.tool_calls == expected
    assert server.request_count(MODEL) == 1


def test_input_2_a_name_repeated_in_every_delta_comes_out_once(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """A server that repeats the full tool name in each delta yields the name once."""
    server.script(
        MODEL,
        _sse(
            _chunk(_call(0, "call_1", "get_weather", "")),
            _chunk(_call(0, None, "get_weather", '{"city":')),
            _chunk(_call(0, None, "get_weather", ' "Oslo"}')),
            _chunk({}, "tool_calls"),
        ),
    )
    manager = _manager(server, closing)

    calls = _stream_text_and_calls(manager)[1]

    assert calls == (ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),)


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "chat"])
def test_input_3_finish_reason_error_falls_back_and_is_not_cached(
    streamed: bool, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """finish_reason "error" with no content is a transient failure: fallback, counted, uncached."""
    error_stream = _sse(_chunk({"role": "assistant", "content": ""}), _chunk({}, "error"))
    error_json = Transcript(
        json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ""},
                        "finish_reason": "error",
                    }
                ],
            }
        ).encode()
    )
    server.set_default(MODEL, error_stream if streamed else error_json)
    manager = _manager(server, closing)

    text = _stream_text_and_calls(manager)[0] if streamed else manager.chat("hi").text

    assert text == "backup answer"
    assert server.request_count(MODEL) == 3  # transient: retried twice before falling back
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 3  # every attempt
    again = manager.chat("weather and time?" if streamed else "hi")
    assert (again.cached, again.text) == (True, "backup answer")  # the empty answer never was


def test_input_4_content_filter_200_falls_back_breaker_neutral_uncached(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """A 200 with finish_reason content_filter and no content is a content-policy failure."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
            }
        ],
    }
    server.set_default(MODEL, Transcript(json.dumps(body).encode()))
    manager = _manager(server, closing)

    assert manager.chat("hi").text == "backup answer"

    assert server.request_count(MODEL) == 1  # not retried
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 0
    again = manager.chat("hi")
    assert (again.cached, again.text) == (True, "backup answer")


def test_input_5_should_retry_false_is_not_retried_but_falls_back(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """A 500 with x-should-retry: false is tried once, then the fallback answers."""
    server.script(MODEL, HTTPError(500, headers={"x-should-retry": "false"}))
    manager = _manager(server, closing)

    assert manager.chat("hi").text == "backup answer"
    assert server.request_count(MODEL) == 1


def test_input_5_should_retry_true_retries_an_error_we_would_not(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """A 400 with x-should-retry: true is retried on the same model, as the SDKs do."""
    server.script(MODEL, HTTPError(400, headers={"x-should-retry": "true"}), Reply("second try"))
    manager = _manager(server, closing)

    assert manager.chat("hi").text == "second try"
    assert server.request_count(MODEL) == 2


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 208950 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, "
        "decrease input length or `max_tokens` and try again",
    ],
)
async def test_input_6_anthropic_context_wording_is_context_window_exceeded(
    message: str, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Anthropic's too-long-prompt wordings raise ContextWindowExceededError to the caller."""
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    server.set_default("claude-test", HTTPError(400, body=body))
    manager = _manager(server, closing, anthropic=True)
    manager.set_fallback_chain([])

    with pytest.raises(AllModelsFailedError) as caught:
        await manager.achat("a very long prompt")

    assert isinstance(caught.value.errors[-1], ContextWindowExceededError)
