"""Content parts on each wire, as the official SDKs' request types spell them."""

from __future__ import annotations

import pytest

from reliable_llm import (
    AudioPart,
    CacheControl,
    ChatRequest,
    FilePart,
    ImagePart,
    InvalidRequestError,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
)
from reliable_llm.providers import _anthropic_wire as anthropic_wire
from reliable_llm.providers import _openai_wire as openai_wire
from reliable_llm.testing.fake_server._content_check import (
    anthropic_content_problem,
    openai_content_problem,
)

B64 = "iVBORw0KGgo="
PDF_B64 = "JVBERi0xLjQK"


def _openai(*messages: Message) -> list[dict[str, object]]:
    params = openai_wire.build_params(ChatRequest(messages), "gpt")
    assert openai_content_problem(params) is None  # what the real API would take
    return params["messages"]  # type: ignore[no-any-return]


def _anthropic(*messages: Message) -> dict[str, object]:
    params, _ = anthropic_wire.build_params(ChatRequest(messages), "claude", max_tokens=64)
    assert anthropic_content_problem(params) is None
    return params


def test_openai_user_parts() -> None:
    """Text, image (URL with detail, base64 as a data URL), audio and PDF (data, id) parts."""
    (message,) = _openai(
        Message.user(
            [
                TextPart("look"),
                ImagePart(url="https://example.com/a.png", detail="low"),
                ImagePart(data=B64, media_type="image/png"),
                AudioPart(B64, "wav"),
                FilePart(data=PDF_B64, media_type="application/pdf", filename="a.pdf"),
                FilePart(data=PDF_B64, media_type="application/pdf"),
                FilePart(file_id="file-abc"),
            ]
        )
    )
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/a.png", "detail": "low"},
            },
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
            {"type": "input_audio", "input_audio": {"data": B64, "format": "wav"}},
            {
                "type": "file",
                "file": {
                    "file_data": f"data:application/pdf;base64,{PDF_B64}",
                    "filename": "a.pdf",
                },
            },
            {
                "type": "file",
                "file": {
                    "file_data": f"data:application/pdf;base64,{PDF_B64}",
                    "filename": "document.pdf",
                },
            },
            {"type": "file", "file": {"file_id": "file-abc"}},
        ],
    }


def test_openai_turns_other_than_user_carry_their_text() -> None:
    """System and assistant parts go as text; a text-only tool result as a string."""
    messages = _openai(
        Message.system([TextPart("be ", cache_control=CacheControl()), TextPart("brief")]),
        Message.assistant([TextPart("ok")], [ToolCall("c1", "f")]),
        Message.tool([TextPart("42")], "c1"),
    )
    assert [m["content"] for m in messages] == ["be brief", "ok", "42"]


def test_openai_takes_no_document_by_url_nor_image_by_file_id() -> None:
    """A PDF by URL or an image by file id has no Chat Completions form: an
    InvalidRequestError (for a model declared to take them), never a malformed body."""
    with pytest.raises(InvalidRequestError, match="not by URL"):
        _openai(Message.user([FilePart(url="https://example.com/a.pdf")]))
    with pytest.raises(InvalidRequestError, match="not by file id"):
        _openai(Message.user([ImagePart(file_id="file-1")]))


def test_anthropic_blocks() -> None:
    """Image and document sources (base64, url, file, text), titles and cache markers."""
    params = _anthropic(
        Message.user(
            [
                ImagePart(data=B64, media_type="image/png", cache_control=CacheControl("1h")),
                ImagePart(url="https://example.com/a.png"),
                ImagePart(file_id="file_01"),
                FilePart(data=PDF_B64, media_type="application/pdf", title="Report"),
                FilePart(url="https://example.com/a.pdf"),
                FilePart(text="plain notes", cache_control=CacheControl()),
            ]
        )
    )
    assert params["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": B64},
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "image", "source": {"type": "file", "file_id": "file_01"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    "title": "Report",
                },
                {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
                    "cache_control": {"type": "ephemeral"},
                },
            ],
        }
    ]


def test_anthropic_reasoning_system_blocks_and_tool_results() -> None:
    """Thinking with its signature and redacted thinking lead the assistant turn; a marked
    system prompt becomes blocks; a tool result carries its image."""
    params = _anthropic(
        Message.system([TextPart("rules", cache_control=CacheControl())]),
        Message.user("draw"),
        Message.assistant(
            [
                ReasoningPart("plan", signature="sig", provider="anthropic"),
                ReasoningPart(redacted_data="enc", provider="anthropic"),
            ],
            [ToolCall("t1", "draw", "{}")],
        ),
        Message.tool([TextPart("done"), ImagePart(data=B64, media_type="image/png")], "t1"),
    )
    assert params["system"] == [
        {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    ]
    assistant, result = params["messages"][1:]  # type: ignore[index]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "plan", "signature": "sig"},
        {"type": "redacted_thinking", "data": "enc"},
        {"type": "tool_use", "id": "t1", "name": "draw", "input": {}},
    ]
    assert result["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [
                {"type": "text", "text": "done"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": B64},
                },
            ],
        }
    ]


def test_anthropic_system_stays_a_string_without_markers() -> None:
    """Unmarked system text is still sent as one string, as before parts existed."""
    params = _anthropic(Message.system("a"), Message.system([TextPart("b")]), Message.user("q"))
    assert params["system"] == "a\n\nb"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                ]
            },
            "Unknown parameter: 'messages[0].content[0].cache_control'.",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}
                ]
            },
            "Invalid value: 'thinking'.",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "x", "format": "ogg"}}
                        ],
                    }
                ]
            },
            "'format' must be 'wav' or 'mp3'",
        ),
    ],
)
def test_the_fake_openai_server_rejects_what_openai_rejects(
    body: dict[str, object], problem: str
) -> None:
    """The fake server's OpenAI wire refuses Anthropic-only fields and unknown part types."""
    assert problem in (openai_content_problem(body) or "")


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"type": "thinking", "thinking": "x"}, "signature: Field required"),
        ({"type": "image_url", "image_url": {"url": "x"}}, "Input tag 'image_url'"),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}},
            "media_type: Input should be",
        ),
        ({"type": "text", "text": "x", "detail": "low"}, "detail: Extra inputs"),
    ],
)
def test_the_fake_anthropic_server_rejects_what_anthropic_rejects(
    block: dict[str, object], problem: str
) -> None:
    """The fake server's Anthropic wire refuses unsigned thinking and foreign part shapes."""
    body = {"messages": [{"role": "assistant", "content": [block]}]}
    assert problem in (anthropic_content_problem(body) or "")


def test_anthropic_stream_keeps_redacted_thinking_and_its_order() -> None:
    """A redacted_thinking block and a thinking block stream out as two parts, in block order,
    the redacted one with its data (Anthropic's documented event shapes)."""
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    events = TypeAdapter(list[RawMessageStreamEvent]).validate_python(
        [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 1},
                },
            },
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3"},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "signature_delta", "signature": "sig"},
            },
            {"type": "content_block_stop", "index": 1},
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "text_delta", "text": "ok"},
            },
            {"type": "content_block_stop", "index": 2},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop"},
        ]
    )
    state = anthropic_wire.StreamState(None)
    chunks = [c for c in map(state.feed, events) if c is not None]

    assert [c.reasoning for c in chunks if c.reasoning] == ["hmm"]
    assert state.closing_chunk().reasoning_parts == (
        ReasoningPart(redacted_data="EmwKAhgBEgy3va3", provider="anthropic"),
        ReasoningPart("hmm", "sig", None, "anthropic"),
    )
