"""The official OpenAI SDK (sync, async, streaming) against the fake's chat completions."""

from __future__ import annotations

import json
import time

import openai
from openai.types.chat import ChatCompletionMessageParam

from reliable_llm.testing.fake_server import FakeLLMServer, Reply, ToolCallSpec

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]


def test_unscripted_model_answers_ok(openai_client: openai.OpenAI) -> None:
    """A model with no script answers the global default "ok" with finish_reason stop."""
    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content == "ok"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o"
    assert completion.id.startswith("chatcmpl-")


def test_scripted_text_and_usage(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """A scripted reply's text, usage and finish reason reach the SDK unchanged."""
    server.script("gpt-4o", Reply("Truncated answ", usage=(11, 7), finish_reason="length"))

    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content == "Truncated answ"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    assert completion.usage.total_tokens == 18


def test_usage_is_estimated_when_not_scripted(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """Unscripted usage is about four characters per token of prompt and answer."""
    server.script("gpt-4o", Reply("x" * 40))

    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4  # "user" + "Hello there": 15 characters
    assert completion.usage.completion_tokens == 10


def test_request_id_header(openai_client: openai.OpenAI) -> None:
    """Responses carry an x-request-id the SDK exposes as _request_id."""
    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion._request_id is not None
    assert completion._request_id.startswith("req_")


async def test_async_client(server: FakeLLMServer, async_openai_client: openai.AsyncOpenAI) -> None:
    """The async SDK gets the scripted reply."""
    server.script("gpt-4o-mini", Reply("async hello"))

    completion = await async_openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )

    assert completion.choices[0].message.content == "async hello"


def test_stream_text_in_chunks_with_usage(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A stream sends the role, chunk_size pieces, finish_reason, a usage chunk and [DONE]."""
    server.script("gpt-4o", Reply("Hello, streaming world", chunk_size=5, usage=(3, 4)))

    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert pieces == ["Hello", ", str", "eamin", "g wor", "ld"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(openai_client: openai.OpenAI) -> None:
    """Without stream_options.include_usage every chunk has a choice and none has usage."""
    chunks = list(
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )

    assert all(len(c.choices) == 1 and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_async_stream(server: FakeLLMServer, async_openai_client: openai.AsyncOpenAI) -> None:
    """The async SDK streams the scripted text to completion."""
    server.script("gpt-4o", Reply("async streamed text", chunk_size=4))

    stream = await async_openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    text = ""
    finish = None
    async for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish

    assert (text, finish) == ("async streamed text", "stop")


def test_tool_calls_round_trip(server: FakeLLMServer, openai_client: openai.OpenAI) -> None:
    """Tool calls arrive with name, JSON arguments, a call_ id and finish_reason tool_calls."""
    server.script(
        "gpt-4o",
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("noop")]),
    )

    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("noop", {}),
    ]
    assert all(c.id.startswith("call_") for c in calls)


def test_streamed_tool_calls_accumulate(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """Streamed tool-call deltas accumulate by index to the right names, ids and arguments."""
    arguments = {"city": "Paris", "units": "metric", "days": [1, 2, 3]}
    server.script(
        "gpt-4o",
        Reply(
            tool_calls=[
                ToolCallSpec("get_weather", arguments, id="call_fixed"),
                ToolCallSpec("get_time", '{"tz": "CET"}'),
            ],
            chunk_size=7,
        ),
    )

    names: dict[int, str] = {}
    ids: dict[int, str] = {}
    args: dict[int, str] = {}
    finish = None
    for chunk in openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ):
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.id:
                ids[delta.index] = delta.id
            if delta.function and delta.function.name:
                names[delta.index] = delta.function.name
            if delta.function and delta.function.arguments:
                args[delta.index] = args.get(delta.index, "") + delta.function.arguments
        finish = chunk.choices[0].finish_reason or finish

    assert names == {0: "get_weather", 1: "get_time"}
    assert ids[0] == "call_fixed"
    assert ids[1].startswith("call_")
    assert json.loads(args[0]) == arguments
    assert json.loads(args[1]) == {"tz": "CET"}
    assert finish == "tool_calls"


def test_stream_helper_accumulates_final_completion(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """The SDK's chat.completions.stream() helper builds the final text and tool call."""
    server.script("gpt-4o", Reply("Let me check.", tool_calls=[ToolCallSpec("lookup", {"q": "x"})]))

    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "lookup"
    assert json.loads(message.tool_calls[0].function.arguments) == {"q": "x"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_anthropic_finish_vocabulary_is_translated(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """A finish reason scripted as Anthropic's max_tokens reaches OpenAI clients as length."""
    server.script("gpt-4o", Reply("cut", finish_reason="max_tokens"))

    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].finish_reason == "length"


def test_chunk_interval_spaces_out_deltas(
    server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    """chunk_interval waits between deltas, so the stream takes about (deltas - 1) intervals."""
    server.script("gpt-4o", Reply("abcd", chunk_size=1, chunk_interval=0.05))
    started = time.monotonic()

    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in openai_client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
    )

    assert text == "abcd"
    assert time.monotonic() - started >= 0.15


def test_refusal_is_spelled_as_openai_does(
    openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    """A refusal reply comes as message.refusal (refusal deltas when streaming), finish stop."""
    server.script("gpt-4o", Reply("I can't help with that.", finish_reason="refusal"))
    server.script("gpt-4o", Reply("I can't help with that.", finish_reason="refusal", chunk_size=5))

    choice = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0]
    assert (choice.message.content, choice.message.refusal) == (None, "I can't help with that.")
    assert choice.finish_reason == "stop"
    chunks = list(
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    assert refusal == "I can't help with that."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
