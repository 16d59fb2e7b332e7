"""ReliableChatModel with content beyond text: media, reasoning, prompt-cache usage.

What a model receives is read from the scripted model's log of requests: the parts the
adapter built from each LangChain block format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_reliable_llm import LangChainChatProvider, ReliableChatModel
from sample_media import b64, pdf_bytes, png_bytes, wav_bytes

from reliable_llm import (
    AudioPart,
    CacheControl,
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    FilePart,
    ImagePart,
    LLMManager,
    Message,
    Provider,
    ReasoningPart,
    StreamChunk,
    TextPart,
    Usage,
)
from reliable_llm.testing import ScriptedModel

PNG = b64(png_bytes())
PDF = b64(pdf_bytes())
WAV = b64(wav_bytes())
SIGNATURE = "ErUBCkYICBgCIkDCTQUXPc3O7nHXd302Zercaz8WrrpddpOqHITxBih5ze"


def _sent(*messages: Any) -> tuple[Message, ...]:
    """The messages a model received for ``messages`` sent through ReliableChatModel (the
    model calls itself ``anthropic``, so Anthropic-signed reasoning is replayed to it)."""
    model = ScriptedModel(name="anthropic")
    ReliableChatModel(models={"m": model}).invoke(list(messages))
    return model.calls[0].messages


def test_standard_blocks_by_base64_url_and_id_become_parts() -> None:
    """LangChain's standard image, audio, file and text-plain blocks arrive as typed parts."""
    (message,) = _sent(
        HumanMessage(
            [
                {"type": "text", "text": "Compare these."},
                {"type": "image", "base64": PNG, "mime_type": "image/png"},
                {"type": "image", "url": "https://example.com/cat.png"},
                {"type": "image", "file_id": "file-abc"},
                {"type": "audio", "base64": WAV, "mime_type": "audio/wav"},
                {
                    "type": "file",
                    "base64": PDF,
                    "mime_type": "application/pdf",
                    "filename": "a.pdf",
                },
                {"type": "file", "url": "https://example.com/a.pdf"},
                {"type": "file", "file_id": "file-pdf"},
                {"type": "text-plain", "text": "notes", "mime_type": "text/plain", "title": "N"},
            ]
        )
    )
    assert message.role == "user"
    assert message.content == (
        TextPart("Compare these."),
        ImagePart(data=PNG, media_type="image/png"),
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(file_id="file-abc"),
        AudioPart(WAV, "wav"),
        FilePart(data=PDF, media_type="application/pdf", filename="a.pdf"),
        FilePart(url="https://example.com/a.pdf"),
        FilePart(file_id="file-pdf"),
        FilePart(text="notes", title="N"),
    )


def test_openai_chat_completions_parts_become_parts() -> None:
    """OpenAI's image_url (data URL, detail; LangChain's older string form), input_audio and
    file parts arrive as parts."""
    (message,) = _sent(
        HumanMessage(
            [
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": "https://example.com/dog.png"},
                {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
                {
                    "type": "file",
                    "file": {
                        "filename": "a.pdf",
                        "file_data": f"data:application/pdf;base64,{PDF}",
                    },
                },
            ]
        )
    )
    assert message.content == (
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(url="https://example.com/dog.png"),
        AudioPart(WAV, "wav"),
        FilePart(data=PDF, media_type="application/pdf", filename="a.pdf"),
    )


def test_anthropic_blocks_and_cache_control_become_parts() -> None:
    """Anthropic image/document sources and cache_control markers arrive as parts."""
    system, user = _sent(
        SystemMessage(
            [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]
        ),
        HumanMessage(
            [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/c.png"}},
                {"type": "image", "source": {"type": "file", "file_id": "file_011"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                },
                {"type": "document", "source": {"type": "text", "data": "plain words"}},
            ]
        ),
    )
    assert system.content == (TextPart("Be terse.", cache_control=CacheControl()),)
    assert user.content == (
        ImagePart(data=PNG, media_type="image/png", cache_control=CacheControl(ttl="1h")),
        ImagePart(url="https://example.com/c.png"),
        ImagePart(file_id="file_011"),
        FilePart(data=PDF, media_type="application/pdf"),
        FilePart(text="plain words"),
    )


def test_langchain_v0_source_type_blocks_become_parts() -> None:
    """Older LangChain blocks (``source_type``) are still read."""
    (message,) = _sent(
        HumanMessage(
            [
                {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
                {"type": "file", "source_type": "id", "id": "file-1"},
            ]
        )
    )
    assert message.content == (
        ImagePart(data=PNG, media_type="image/png"),
        FilePart(file_id="file-1"),
    )


def test_text_only_block_lists_stay_plain_text() -> None:
    """A list of text blocks is sent as one string, exactly as before content parts."""
    (message,) = _sent(HumanMessage([{"type": "text", "text": "a"}, "b"]))
    assert message.content == "ab"


def test_anthropic_thinking_history_keeps_signatures_and_issuer() -> None:
    """Thinking, redacted thinking and standard reasoning blocks in history keep their
    signature, redacted data and issuing provider."""
    _, assistant, _ = _sent(
        HumanMessage("Hello"),
        AIMessage(
            [
                {"type": "thinking", "thinking": "A greeting.", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "reasoning", "reasoning": "Mine.", "extras": {"signature": "s2"}},
                {"type": "text", "text": "Hello, how are you?"},
            ],
            response_metadata={"model_provider": "anthropic"},
        ),
        HumanMessage("Well, thanks."),
    )
    assert assistant.content == (
        ReasoningPart("A greeting.", signature=SIGNATURE, provider="anthropic"),
        ReasoningPart(redacted_data="EmwKAhgBEgy3va3pzix", provider="anthropic"),
        ReasoningPart("Mine.", signature="s2", provider="anthropic"),
        TextPart("Hello, how are you?"),
    )


def test_anthropic_tool_results_in_a_human_message_become_tool_messages() -> None:
    """``tool_result`` blocks in a human turn become tool results, then the rest of the turn."""
    messages = _sent(
        HumanMessage("Pick a colour"),
        AIMessage(
            [{"type": "tool_use", "id": "foo", "name": "pick", "input": {"c": "green"}}],
            tool_calls=[{"name": "pick", "args": {"c": "green"}, "id": "foo"}],
        ),
        HumanMessage(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "foo",
                    "content": [{"type": "text", "text": "green is great"}],
                    "is_error": False,
                },
                {"type": "text", "text": "what's my favourite colour?"},
            ]
        ),
    )
    assert [(m.role, m.text, m.tool_call_id) for m in messages[2:]] == [
        ("tool", "green is great", "foo"),
        ("user", "what's my favourite colour?", None),
    ]
    assert messages[1].tool_calls[0].args == {"c": "green"}


def test_tool_message_with_an_image_keeps_the_image() -> None:
    """A tool result may carry an image (OpenAI image_url or a standard block)."""
    for block in (
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
    ):
        _, _, tool = _sent(
            HumanMessage("draw"),
            AIMessage("", tool_calls=[{"name": "draw", "args": {}, "id": "1"}]),
            ToolMessage([block], tool_call_id="1"),
        )
        assert tool.content == (ImagePart(data=PNG, media_type="image/png"),)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "video", "url": "https://example.com/v.mp4"}, "'video'"),
        ({"type": "server_tool_call", "name": "web", "args": {}, "id": "1"}, "server_tool_call"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,abc"}}, "data URL"),
        ({"type": "audio", "base64": WAV}, "mime_type"),
        ({"type": "text", "text": "x", "cache_control": {"type": "persistent"}}, "ephemeral"),
    ],
)
def test_blocks_no_provider_takes_are_refused_with_the_reason(
    block: dict[str, Any], message: str
) -> None:
    """An unknown block type or a malformed block raises ConfigurationError naming it, and
    no model is called."""
    model = ScriptedModel()
    chat = ReliableChatModel(models={"m": model})
    with pytest.raises(ConfigurationError, match=message):
        chat.invoke([HumanMessage([block])])
    assert model.call_count == 0


def _reasoned() -> ChatResponse:
    return ChatResponse(
        "4",
        reasoning=(
            ReasoningPart("2+2 is 4.", signature=SIGNATURE, provider="anthropic"),
            ReasoningPart(redacted_data="EmwK", provider="anthropic"),
        ),
        usage=Usage(10, 20, reasoning_tokens=15),
    )


def test_reasoning_comes_back_as_standard_blocks_and_round_trips() -> None:
    """The answer's reasoning is LangChain reasoning blocks before the text; sent back in
    the history, the model receives the same reasoning parts."""
    model = ScriptedModel([_reasoned()], name="anthropic")
    chat = ReliableChatModel(models={"m": model})
    answer = chat.invoke("What is 2+2?")
    assert answer.text == "4"
    assert answer.content == [
        {
            "type": "reasoning",
            "reasoning": "2+2 is 4.",
            "extras": {"signature": SIGNATURE, "provider": "anthropic"},
        },
        {"type": "reasoning", "extras": {"redacted_data": "EmwK", "provider": "anthropic"}},
        {"type": "text", "text": "4"},
    ]
    assert [b["type"] for b in answer.content_blocks] == ["reasoning", "reasoning", "text"]
    chat.invoke([HumanMessage("What is 2+2?"), answer, HumanMessage("And 3+3?")])
    assert model.calls[1].messages[1] == _reasoned().message


class _ThinkingStream(Provider):
    """Streams two reasoning blocks (text, then each finished block), then text."""

    provider_name = "thinking"

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        raise NotImplementedError

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        raise NotImplementedError

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        first = ReasoningPart("Add two and two.", signature="sig-1", provider="anthropic")
        yield StreamChunk(reasoning="Add two ")
        yield StreamChunk(reasoning="and two.")
        yield StreamChunk(reasoning_parts=(first,))
        yield StreamChunk(reasoning_parts=(ReasoningPart(redacted_data="r", provider="anthropic"),))
        yield StreamChunk(text="The answer ")
        yield StreamChunk(text="is 4.")
        yield StreamChunk(finish_reason="stop", usage=Usage(3, 5))


def test_streamed_reasoning_merges_into_signed_blocks_before_the_text() -> None:
    """Reasoning streams as it comes; the merged message holds each block once, with its
    signature, before the text."""
    chat = ReliableChatModel(models={"m": _ThinkingStream()})
    chunks = list(chat.stream("What is 2+2?"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.text == "The answer is 4."
    blocks = [{k: v for k, v in b.items() if k != "index"} for b in merged.content_blocks]
    assert blocks == [
        {
            "type": "reasoning",
            "reasoning": "Add two and two.",
            "extras": {"signature": "sig-1", "provider": "anthropic"},
        },
        {"type": "reasoning", "extras": {"redacted_data": "r", "provider": "anthropic"}},
        {"type": "text", "text": "The answer is 4."},
    ]


def test_usage_reports_prompt_cache_and_reasoning_token_details() -> None:
    """Cache-read, cache-written and reasoning tokens appear in LangChain's usage details."""
    answer = ChatResponse("ok", usage=Usage(120, 40, 100, 15, 30))
    model = ReliableChatModel(models={"m": ScriptedModel(default=answer)})
    usage = model.invoke("hi").usage_metadata
    assert usage == {
        "input_tokens": 120,
        "output_tokens": 40,
        "total_tokens": 160,
        "input_token_details": {"cache_read": 100, "cache_creation": 15},
        "output_token_details": {"reasoning": 30},
    }


def test_usage_without_details_has_no_detail_keys() -> None:
    """A provider that reports only totals gives LangChain only totals, as before."""
    answer = ChatResponse("ok", usage=Usage(3, 4))
    model = ReliableChatModel(models={"m": ScriptedModel(default=answer)})
    assert model.invoke("hi").usage_metadata == {
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,
    }


def test_a_wrapped_langchain_model_gets_parts_and_returns_reasoning_and_cache_usage() -> None:
    """A LangChain model registered with declared capabilities receives the image as a
    standard block; its reasoning (redacted too) and prompt-cache usage come back in the
    core response."""
    seen: list[list[BaseMessage]] = []

    class Recording(GenericFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            seen.append(messages)
            return super()._generate(messages, *args, **kwargs)

    answer = AIMessage(
        [
            {"type": "reasoning", "reasoning": "A red pixel.", "extras": {"signature": "s"}},
            {"type": "redacted_thinking", "data": "EmwK"},
            {"type": "text", "text": "Red."},
        ],
        usage_metadata={
            "input_tokens": 50,
            "output_tokens": 9,
            "total_tokens": 59,
            "input_token_details": {"cache_read": 40},
            "output_token_details": {"reasoning": 6},
        },
    )
    manager = LLMManager()
    manager.register_model(
        "wrapped",
        LangChainChatProvider(Recording(messages=iter([answer])), name="wrapped-lc"),
        metadata={"capabilities": {"image": ["data"]}},
    )

    response = manager.chat(
        [Message.user([TextPart("Colour?"), ImagePart(data=PNG, media_type="image/png")])]
    )

    assert seen[0][0].content == [
        {"type": "text", "text": "Colour?"},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
    ]
    assert (response.text, type(response.text)) == ("Red.", str)
    assert response.reasoning == (
        ReasoningPart("A red pixel.", "s", None, "wrapped-lc"),
        ReasoningPart(redacted_data="EmwK", provider="wrapped-lc"),
    )
    assert response.usage == Usage(50, 9, 40, 0, 6)


def test_a_refusal_in_history_is_sent_as_the_assistant_text() -> None:
    """A standard ``refusal`` block of an earlier answer reaches the model as its text."""
    _, assistant, _ = _sent(
        HumanMessage("Tell me a secret."),
        AIMessage([{"type": "refusal", "refusal": "I can't share that."}]),
        HumanMessage("Fine."),
    )
    assert assistant.text == "I can't share that."


class _StreamingThinker(BaseChatModel):
    """Streams Anthropic-style thinking chunks (text, then the signature), then text."""

    @property
    def _llm_type(self) -> str:
        return "thinker"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        anthropic = {"model_provider": "anthropic"}
        for content in (
            [{"type": "thinking", "thinking": "Add two ", "index": 0}],
            [{"type": "thinking", "thinking": "and two.", "index": 0}],
            [{"type": "thinking", "signature": "sig-9", "index": 0}],
            [{"type": "text", "text": "4", "index": 1}],
        ):
            message = AIMessageChunk(content=content, response_metadata=anthropic)  # type: ignore[arg-type]
            yield ChatGenerationChunk(message=message)


def test_a_wrapped_langchain_models_streamed_thinking_arrives_whole() -> None:
    """A wrapped model's streamed thinking streams as reasoning text and ends as one part
    with the signature that came in its own chunk."""
    manager = LLMManager()
    manager.register_model("wrapped", LangChainChatProvider(_StreamingThinker(), name="claude-lc"))

    stream = manager.stream([Message.user("2+2?")])
    pieces = [chunk.reasoning for chunk in stream if chunk.reasoning]

    assert pieces == ["Add two ", "and two."]
    assert stream.response is not None
    assert stream.response.text == "4"
    assert stream.response.reasoning == (
        ReasoningPart("Add two and two.", "sig-9", None, "claude-lc"),
    )
