"""Request translation, protocol by protocol, without a server."""

from __future__ import annotations

import pytest

from reliable_llm import ChatRequest, InvalidRequestError, Message, Tool, ToolCall
from reliable_llm.providers import _anthropic_wire as anthropic_wire
from reliable_llm.providers import _openai_wire as openai_wire

TOOL = Tool("lookup", "Look a word up.", {"type": "object", "properties": {}})


def _request(*messages: Message, **fields: object) -> ChatRequest:
    return ChatRequest(messages, **fields)  # type: ignore[arg-type]


def test_openai_params_map_every_field() -> None:
    """Generation parameters, tools and tool_choice land in Chat Completions fields."""
    request = _request(
        Message.user("hi", name="ann"),
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        stop=("END",),
        seed=7,
        tools=(TOOL,),
        tool_choice="lookup",
        response_format={"type": "json_object"},
        extra={"logprobs": True, "api_key": "sk-x", "timeout": 3, "extra_headers": {"X-A": "1"}},
    )

    params = openai_wire.build_params(request, "gpt-test", default_params={"temperature": 1.0})

    assert params["messages"] == [{"role": "user", "content": "hi", "name": "ann"}]
    assert params["temperature"] == 0.2
    assert params["max_completion_tokens"] == 50
    assert (params["top_p"], params["stop"], params["seed"]) == (0.9, ["END"], 7)
    assert params["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert params["response_format"] == {"type": "json_object"}
    assert params["extra_body"] == {"logprobs": True}
    assert params["extra_headers"] == {"X-A": "1"}


def test_compatible_servers_get_max_tokens() -> None:
    """The OpenAI-compatible spelling of the output limit is max_tokens."""
    params = openai_wire.build_params(
        _request(Message.user("hi"), max_tokens=5), "m", max_tokens_param="max_tokens"
    )
    assert params["max_tokens"] == 5 and "max_completion_tokens" not in params


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ("lookup", {"type": "tool", "name": "lookup"}),
    ],
)
def test_anthropic_tool_choice_mapping(choice: str, wire: dict[str, str]) -> None:
    """auto / required / none / a tool name map to Anthropic's tool_choice objects."""
    params, _ = anthropic_wire.build_params(
        _request(Message.user("hi"), tools=(TOOL,), tool_choice=choice), "c", max_tokens=10
    )
    assert params["tool_choice"] == wire


def test_anthropic_conversation_shape() -> None:
    """System prompts are lifted out, empty turns dropped, consecutive tool results merged."""
    call_a, call_b = ToolCall("a", "lookup", '{"w": "x"}'), ToolCall("b", "lookup", "{}")
    request = _request(
        Message.system("Rule one."),
        Message.user("hi"),
        Message.system("Rule two."),
        Message.assistant("Looking up.", [call_a, call_b]),
        Message.tool("A", "a"),
        Message.tool("B", "b"),
        Message.user("thanks"),
        Message.assistant(""),
        seed=3,
    )

    params, json_tool = anthropic_wire.build_params(request, "c", max_tokens=99)

    assert json_tool is None
    assert params["system"] == "Rule one.\n\nRule two."
    assert params["max_tokens"] == 99
    assert "seed" not in params
    assert params["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking up."},
                {"type": "tool_use", "id": "a", "name": "lookup", "input": {"w": "x"}},
                {"type": "tool_use", "id": "b", "name": "lookup", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "A"},
                {"type": "tool_result", "tool_use_id": "b", "content": "B"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_anthropic_json_object_uses_an_open_schema_tool() -> None:
    """json_object is emulated with a forced tool accepting any object."""
    params, json_tool = anthropic_wire.build_params(
        _request(Message.user("hi"), response_format={"type": "json_object"}), "c", max_tokens=10
    )
    assert json_tool == "json_response"
    assert params["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert params["tools"][0]["input_schema"]["type"] == "object"


def test_anthropic_rejects_response_format_with_tools() -> None:
    """response_format plus tools cannot be emulated and is rejected as InvalidRequestError."""
    request = _request(Message.user("hi"), tools=(TOOL,), response_format={"type": "json_object"})
    with pytest.raises(InvalidRequestError, match="forced tool"):
        anthropic_wire.build_params(request, "c", max_tokens=10)


def test_finish_reasons_are_normalized() -> None:
    """Both protocols' stop reasons map onto stop / length / tool_calls / refusal."""
    assert [openai_wire.finish_reason(r) for r in ("stop", "length", "function_call", None)] == [
        "stop",
        "length",
        "tool_calls",
        "stop",
    ]
    anthropic = ["end_turn", "stop_sequence", "max_tokens", "tool_use", "refusal"]
    assert [anthropic_wire.finish_reason(r) for r in anthropic] == [
        "stop",
        "stop",
        "length",
        "tool_calls",
        "refusal",
    ]
    assert anthropic_wire.finish_reason("tool_use", json_tool="reading") == "stop"


def test_undeclared_sdk_parameters_move_to_extra_body() -> None:
    """Fields an SDK method no longer declares are sent as extra_body, not a TypeError."""
    from reliable_llm.providers._signature import fit_to_signature

    def create(*, model: str, extra_body: object = None, timeout: object = None) -> None:
        """A stand-in for an SDK create() without sampling parameters."""

    params = fit_to_signature(
        create, {"model": "m", "temperature": 0.5, "extra_body": {"top_k": 2}}
    )

    assert params == {"model": "m", "extra_body": {"temperature": 0.5, "top_k": 2}}
