"""Tool calls and structured output round-trip through every provider, sync / async / stream."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from reliable_llm import Message, Tool
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, ToolCallSpec
from tests.providers.conftest import KINDS, MODES, ManagerFactory, Target, ask

WEATHER = Tool(
    "get_weather",
    "Current weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
    "required": ["city", "celsius"],
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "reading", "schema": SCHEMA}}


def _sent_tools(body: dict[str, object], protocol: str) -> list[str]:
    tools = body["tools"]
    assert isinstance(tools, list)
    if protocol == "anthropic":
        return [t["name"] for t in tools]
    return [t["function"]["name"] for t in tools]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_tool_call_round_trip(
    kind: str,
    mode: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """The model's tool call comes back typed, and the tool result goes back in wire shape."""
    made = target(kind)
    call = ToolCallSpec("get_weather", {"city": "Paris"}, id="call_weather_1")
    server.script(made.scripted_as, Reply(tool_calls=[call]), Reply("Sunny in Paris."))
    manager = make_manager(made.provider, fallback=False)
    question = [Message.system("Be brief."), Message.user("Weather in Paris?")]

    first = await ask(manager, mode, question, tools=[WEATHER], tool_choice="get_weather")

    assert first.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.args) for c in first.tool_calls] == [
        ("call_weather_1", "get_weather", {"city": "Paris"})
    ]
    conversation = [*question, first.message, Message.tool("22 C, sunny", "call_weather_1")]
    second = await ask(manager, mode, conversation, tools=[WEATHER])

    assert second.text == "Sunny in Paris."
    assert second.finish_reason == "stop"
    requests = server.requests
    assert len(requests) == 2
    body_one, body_two = requests[0].body, requests[1].body
    assert body_one is not None and body_two is not None
    assert _sent_tools(body_one, made.protocol) == ["get_weather"]
    if made.protocol == "anthropic":
        assert body_one["system"] == "Be brief."
        assert body_one["tool_choice"] == {"type": "tool", "name": "get_weather"}
        assistant, result = body_two["messages"][1], body_two["messages"][2]
        assert assistant["content"] == [
            {
                "type": "tool_use",
                "id": "call_weather_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            }
        ]
        assert result == {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_weather_1", "content": "22 C, sunny"}
            ],
        }
    else:
        assert body_one["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assistant, result = body_two["messages"][2], body_two["messages"][3]
        assert assistant["tool_calls"][0]["function"] == {
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        }
        assert result == {
            "role": "tool",
            "tool_call_id": "call_weather_1",
            "content": "22 C, sunny",
        }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_structured_output_round_trip(
    kind: str,
    mode: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """A json_schema response_format yields the JSON object as the answer text."""
    made = target(kind)
    if made.protocol == "anthropic":
        # Anthropic answers through the forced tool that carries the schema.
        reply = Reply(tool_calls=[ToolCallSpec("reading", {"city": "Oslo", "celsius": -3})])
    else:
        reply = Reply('{"city": "Oslo", "celsius": -3}')
    server.script(made.scripted_as, reply)
    manager = make_manager(made.provider, fallback=False)

    response = await ask(manager, mode, "Weather in Oslo as JSON", response_format=RESPONSE_FORMAT)

    assert json.loads(response.text) == {"city": "Oslo", "celsius": -3}
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    body = server.requests[0].body
    assert body is not None
    if made.protocol == "anthropic":
        assert body["tool_choice"] == {"type": "tool", "name": "reading"}
        assert body["tools"] == [{"name": "reading", "input_schema": SCHEMA}]
    else:
        assert body["response_format"] == RESPONSE_FORMAT


@pytest.mark.parametrize("kind", KINDS)
async def test_usage_and_finish_reason_reach_the_caller(
    kind: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """Token usage and a normalized finish reason arrive with complete and streamed answers."""
    made = target(kind)
    server.script(
        made.scripted_as,
        Reply("cut short", usage=(11, 7), finish_reason="length"),
        Reply("cut short", usage=(11, 7), finish_reason="length"),
    )
    manager = make_manager(made.provider, fallback=False)

    for mode in ("sync", "stream"):
        response = await ask(manager, mode)
        assert response.text == "cut short"
        assert response.finish_reason == "length"
        assert response.usage is not None
        assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    stream_body = server.requests[1].body
    assert stream_body is not None
    if made.protocol == "openai":
        assert stream_body["stream_options"] == {"include_usage": True}
