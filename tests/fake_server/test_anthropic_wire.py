"""The official Anthropic SDK (sync, async, streaming) against the fake's messages API."""

from __future__ import annotations

import anthropic
from anthropic.types import MessageParam, TextBlock, ToolUseBlock

from reliable_llm.testing.fake_server import FakeLLMServer, Reply, ToolCallSpec

# A made-up name: real ones trip the SDK's DeprecationWarning as they age.
MODEL = "claude-fake"
MESSAGES: list[MessageParam] = [{"role": "user", "content": "Hello there"}]


def test_text_reply_with_usage_and_stop_reason(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A scripted reply becomes one text block with end_turn and the scripted usage."""
    server.script(MODEL, Reply("Bonjour", usage=(12, 3)))

    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)

    assert [(b.type, b.text) for b in message.content if isinstance(b, TextBlock)] == [
        ("text", "Bonjour")
    ]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    assert message._request_id is not None


def test_openai_finish_vocabulary_is_translated(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A finish reason scripted as OpenAI's length reaches Anthropic clients as max_tokens."""
    server.script(MODEL, Reply("cut", finish_reason="length"))

    message = anthropic_client.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)

    assert message.stop_reason == "max_tokens"


async def test_async_client(
    server: FakeLLMServer, async_anthropic_client: anthropic.AsyncAnthropic
) -> None:
    """The async SDK gets the scripted reply."""
    server.script(MODEL, Reply("async hello"))

    message = await async_anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES
    )

    assert isinstance(message.content[0], TextBlock)
    assert message.content[0].text == "async hello"


def test_tool_use_round_trip(server: FakeLLMServer, anthropic_client: anthropic.Anthropic) -> None:
    """Tool calls become tool_use blocks with dict input, toolu_ ids and stop_reason tool_use."""
    server.script(
        MODEL,
        Reply(
            "Checking.",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("noop")],
        ),
    )

    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)

    assert message.stop_reason == "tool_use"
    assert isinstance(message.content[0], TextBlock)
    tools = [b for b in message.content if isinstance(b, ToolUseBlock)]
    assert [(t.name, t.input) for t in tools] == [("get_weather", {"city": "Paris"}), ("noop", {})]
    assert all(t.id.startswith("toolu_") for t in tools)


def test_raw_stream_event_sequence(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """create(stream=True) yields the documented event order and final usage."""
    server.script(MODEL, Reply("Hello world", chunk_size=6, usage=(5, 2)))

    events = list(
        anthropic_client.messages.create(
            model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
        )
    )

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == 5
    assert delta.type == "message_delta"
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("end_turn", 2)


def test_stream_helper_text(server: FakeLLMServer, anthropic_client: anthropic.Anthropic) -> None:
    """messages.stream() yields the text pieces and a complete final message."""
    server.script(MODEL, Reply("Hello, streaming world", chunk_size=5))

    with anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert pieces == ["Hello", ", str", "eamin", "g wor", "ld"]
    assert isinstance(final.content[0], TextBlock)
    assert final.content[0].text == "Hello, streaming world"
    assert final.stop_reason == "end_turn"


def test_stream_helper_accumulates_tool_use(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """input_json_delta fragments accumulate into the tool_use block's input."""
    arguments = {"city": "Paris", "units": "metric", "days": [1, 2, 3]}
    server.script(
        MODEL,
        Reply(
            "Let me look.",
            tool_calls=[ToolCallSpec("get_weather", arguments, id="toolu_fixed")],
            chunk_size=4,
        ),
    )

    with anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        final = stream.get_final_message()

    assert final.stop_reason == "tool_use"
    tool = final.content[1]
    assert isinstance(tool, ToolUseBlock)
    assert (tool.id, tool.name, tool.input) == ("toolu_fixed", "get_weather", arguments)


def test_tool_only_stream_has_no_text_block(
    server: FakeLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    """A reply with tool calls and no text streams only tool_use blocks."""
    server.script(MODEL, Reply(tool_calls=[ToolCallSpec("noop", {"a": 1})]))

    with anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        final = stream.get_final_message()

    assert [b.type for b in final.content] == ["tool_use"]


async def test_async_stream_helper(
    server: FakeLLMServer, async_anthropic_client: anthropic.AsyncAnthropic
) -> None:
    """The async messages.stream() helper yields the whole text."""
    server.script(MODEL, Reply("async streamed text", chunk_size=3))

    async with async_anthropic_client.messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()

    assert text == "async streamed text"
    assert final.stop_reason == "end_turn"
