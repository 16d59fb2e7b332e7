"""ReliableLLM with LlamaIndex's content blocks: images, audio, documents, thinking, cache
points, in and out, in a query engine and across a fallback over the wire."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    DocumentBlock,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
)
from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageNode, TextNode
from llama_index.llms.reliable import LlamaIndexLLMProvider, ReliableLLM, ReliableLLMMetadata
from sample_media import b64, pdf_bytes, png_bytes, wav_bytes

from reliable_llm import (
    AudioPart,
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
from reliable_llm import CacheControl as PartCacheControl
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, server_error

PNG = png_bytes()
PDF = pdf_bytes()
WAV = wav_bytes()
SIGNATURE = "EqQBCkYIBxgCKkDmnq3B5LwPzE0M4mBJ1m7Qm8pN"


def _sent(*messages: ChatMessage) -> tuple[Message, ...]:
    """The messages a model received for ``messages`` sent through ReliableLLM (the model
    calls itself ``anthropic``, so Anthropic-signed reasoning is replayed to it)."""
    model = ScriptedModel(name="anthropic")
    ReliableLLM(models={"m": model}).chat(list(messages))
    return model.calls[0].messages


def _user(*blocks: Any, **extra: Any) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, blocks=list(blocks), additional_kwargs=extra)


def test_image_audio_and_document_blocks_become_parts(tmp_path: Path) -> None:
    """Bytes, local paths and URLs of images, audio and documents arrive as typed parts."""
    picture = tmp_path / "square.png"
    picture.write_bytes(PNG)
    (message,) = _sent(
        _user(
            TextBlock(text="Compare these."),
            ImageBlock(image=PNG, detail="low"),
            ImageBlock(path=picture),
            ImageBlock(url="https://example.com/cat.png"),
            AudioBlock(audio=WAV, format="wav"),
            DocumentBlock(data=PDF, title="Report"),
            DocumentBlock(url="https://example.com/a.pdf", document_mimetype="application/pdf"),
        )
    )
    assert message.content == (
        TextPart("Compare these."),
        ImagePart(data=b64(PNG), media_type="image/png", detail="low"),
        ImagePart(data=b64(PNG), media_type="image/png"),
        ImagePart(url="https://example.com/cat.png"),
        AudioPart(b64(WAV), "wav"),
        FilePart(data=b64(PDF), media_type="application/pdf", filename="Report", title="Report"),
        FilePart(url="https://example.com/a.pdf"),
    )


def test_text_only_blocks_stay_plain_text() -> None:
    """A message of text blocks is sent as one string, as before content parts."""
    (message,) = _sent(_user(TextBlock(text="a"), TextBlock(text="b")))
    assert message.content == "a\nb"


def test_cache_points_and_cache_control_mark_the_part_before() -> None:
    """A CachePoint marks the block before it; ``additional_kwargs["cache_control"]`` marks a
    message's last block (LlamaIndex's Anthropic conventions)."""
    system = ChatMessage(
        role=MessageRole.SYSTEM,
        blocks=[
            TextBlock(text="Long instructions."),
            CachePoint(cache_control=CacheControl(type="ephemeral", ttl="1h")),
        ],
    )
    user = _user(TextBlock(text="Question"), cache_control={"type": "ephemeral"})
    sent_system, sent_user = _sent(system, user)
    assert sent_system.content == (
        TextPart("Long instructions.", cache_control=PartCacheControl(ttl="1h")),
    )
    assert sent_user.content == (TextPart("Question", cache_control=PartCacheControl()),)


def test_thinking_blocks_keep_signature_and_issuer() -> None:
    """A ThinkingBlock in history reaches the model with its signature and issuer."""
    assistant = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            ThinkingBlock(
                content="A greeting.",
                additional_information={"signature": SIGNATURE, "provider": "anthropic"},
            ),
            TextBlock(text="Hello!"),
        ],
    )
    _, sent = _sent(_user(TextBlock(text="Hi")), assistant)
    assert sent.content == (
        ReasoningPart("A greeting.", signature=SIGNATURE, provider="anthropic"),
        TextPart("Hello!"),
    )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (CachePoint(cache_control=CacheControl(type="ephemeral")), "must follow"),
        (AudioBlock(url="https://example.com/a.wav", format="wav"), "audio by URL"),
    ],
)
def test_blocks_that_cannot_be_sent_are_refused(block: Any, message: str) -> None:
    """A misplaced CachePoint or audio by URL raises ConfigurationError; no model is called."""
    model = ScriptedModel()
    llm = ReliableLLM(models={"m": model})
    with pytest.raises(ConfigurationError, match=message):
        llm.chat([_user(block)])
    assert model.call_count == 0


def _reasoned() -> ChatResponse:
    return ChatResponse(
        "4",
        reasoning=(ReasoningPart("2+2 is 4.", signature=SIGNATURE, provider="anthropic"),),
        usage=Usage(10, 20, cache_read_tokens=8, reasoning_tokens=15),
    )


def test_reasoning_comes_back_as_a_thinking_block_and_round_trips() -> None:
    """The answer's reasoning is a ThinkingBlock before the text (signature and issuer in
    additional_information); sent back, the model receives the same reasoning."""
    model = ScriptedModel([_reasoned()], name="anthropic")
    llm = ReliableLLM(models={"m": model})
    question = _user(TextBlock(text="What is 2+2?"))

    answer = llm.chat([question])
    llm.chat([question, answer.message, _user(TextBlock(text="Sure?"))])

    thinking, text = answer.message.blocks
    assert isinstance(thinking, ThinkingBlock) and isinstance(text, TextBlock)
    assert (thinking.content, thinking.additional_information) == (
        "2+2 is 4.",
        {"signature": SIGNATURE, "provider": "anthropic"},
    )
    assert answer.message.content == "4"
    assert answer.additional_kwargs["cache_read_tokens"] == 8
    assert answer.additional_kwargs["reasoning_tokens"] == 15
    assert model.calls[1].messages[1] == _reasoned().message


class _ThinkingStream(Provider):
    """Streams a reasoning block (text, then the finished block), then text."""

    provider_name = "anthropic"

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        raise NotImplementedError

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        raise NotImplementedError

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        yield StreamChunk(reasoning="Add two ")
        yield StreamChunk(reasoning="and two.")
        part = ReasoningPart("Add two and two.", signature="sig-1", provider="anthropic")
        yield StreamChunk(reasoning_parts=(part,))
        yield StreamChunk(text="It is 4.")
        yield StreamChunk(finish_reason="stop", usage=Usage(3, 5))


def test_streamed_reasoning_shows_as_it_comes_and_ends_signed() -> None:
    """While streaming, the thinking so far is a ThinkingBlock; the last response holds the
    finished block with its signature, then the text."""
    llm = ReliableLLM(models={"m": _ThinkingStream()})
    responses = list(llm.stream_chat([_user(TextBlock(text="2+2?"))]))
    first_blocks = responses[0].message.blocks
    assert [type(b).__name__ for b in first_blocks] == ["ThinkingBlock"]
    assert first_blocks[0].content == "Add two "
    thinking, text = responses[-1].message.blocks
    assert isinstance(thinking, ThinkingBlock) and isinstance(text, TextBlock)
    assert (thinking.content, thinking.additional_information["signature"]) == (
        "Add two and two.",
        "sig-1",
    )
    assert text.text == "It is 4."


def test_metadata_reports_what_content_the_model_takes(fake_llm_server: FakeLLMServer) -> None:
    """``metadata`` says whether the first model takes images, audio, PDFs and cache points:
    from its provider's defaults, or from the registration's capabilities."""
    claude = AnthropicProvider(
        "claude-test", api_key="k", base_url=fake_llm_server.anthropic_base_url
    )
    gpt = OpenAIProvider("gpt-test", api_key="k", base_url=fake_llm_server.openai_base_url)
    try:
        facts = {
            name: ReliableLLM(models={name: model}, model_metadata=meta).metadata
            for name, model, meta in (
                ("claude", claude, None),
                ("gpt", gpt, None),
                ("callable", lambda prompt: "text", None),
                ("declared", lambda prompt: "x", {"declared": {"capabilities": {"audio": True}}}),
            )
        }
    finally:
        claude.close()
        gpt.close()
    assert all(isinstance(m, ReliableLLMMetadata) for m in facts.values())
    assert {
        name: (
            m.supports_vision,
            m.supports_audio_input,
            m.supports_pdf_input,
            m.supports_prompt_caching,
        )
        for name, m in facts.items()
    } == {
        "claude": (True, False, True, True),
        "gpt": (True, False, True, False),
        "callable": (False, False, False, False),
        "declared": (False, True, False, False),
    }


@pytest.mark.usefixtures("event_loop_for_sync_llama_index")
def test_image_query_through_a_query_engine_falls_back_with_the_same_bytes(
    fake_llm_server: FakeLLMServer, clock: FakeClock
) -> None:
    """A multimodal query engine retrieves an ImageNode and asks ReliableLLM; OpenAI answers
    503, Claude receives the image with the same bytes and its answer is the response."""
    server = fake_llm_server
    server.set_default("gpt-test", server_error(503))
    server.script("claude-test", Reply("The chart is a red square."))
    gpt = OpenAIProvider("gpt-test", api_key="sk-test", base_url=server.openai_base_url)
    claude = AnthropicProvider("claude-test", api_key="sk-test", base_url=server.anthropic_base_url)
    llm = ReliableLLM(models={"gpt": gpt, "claude": claude}, max_retries=1, clock=clock)
    nodes = [
        ImageNode(image=b64(PNG), image_mimetype="image/png", text="sales chart", id_="chart"),
        TextNode(text="Sales doubled in May.", id_="notes"),
    ]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=2), llm=llm, multimodal=True
    )
    try:
        response = engine.query("What does the sales chart show?")
    finally:
        gpt.close()
        claude.close()

    assert str(response) == "The chart is a red square."
    claude_bodies = [r.body for r in server.requests if r.model == "claude-test" and r.body]
    (body,) = claude_bodies
    images = [b for m in body["messages"] for b in m["content"] if b["type"] == "image"]
    (image,) = images
    assert image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == PNG
    assert llm.manager.get_metrics()["fallbacks"]["by_pair"] == {"gpt->claude": 1}


class _ThinkingLLM(CustomLLM):
    """A LlamaIndex LLM that records its messages and answers with a ThinkingBlock."""

    seen: list[list[ChatMessage]] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name="thinker-1")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError

    @llm_chat_callback()
    def chat(self, messages: Any, **kwargs: Any) -> LIChatResponse:
        self.seen.append(list(messages))
        blocks = [
            ThinkingBlock(content="A red pixel.", additional_information={"signature": "s"}),
            TextBlock(text="Red."),
        ]
        extra = {"prompt_tokens": 50, "completion_tokens": 9, "cache_read_tokens": 40}
        return LIChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks),
            additional_kwargs=extra,
        )


def test_a_wrapped_llama_index_llm_gets_blocks_and_returns_reasoning() -> None:
    """A LlamaIndex LLM registered with declared capabilities receives the image as an
    ImageBlock; its ThinkingBlock and cache usage come back in the core response."""
    wrapped = _ThinkingLLM()
    manager = LLMManager()
    manager.register_model(
        "wrapped",
        LlamaIndexLLMProvider(wrapped, name="wrapped-li"),
        metadata={"capabilities": {"image": ["data"]}},
    )

    response = manager.chat(
        [Message.user([TextPart("Colour?"), ImagePart(data=b64(PNG), media_type="image/png")])]
    )

    text, image = wrapped.seen[0][0].blocks
    assert isinstance(text, TextBlock) and text.text == "Colour?"
    assert isinstance(image, ImageBlock) and image.image_mimetype == "image/png"
    assert base64.b64decode(image.image or b"") == PNG
    assert response.text == "Red."
    assert response.reasoning == (ReasoningPart("A red pixel.", "s", None, "wrapped-li"),)
    assert response.usage == Usage(50, 9, 40)


@pytest.mark.parametrize("mode", ["chat", "stream_chat"])
def test_claude_thinking_over_the_wire_comes_back_signed(
    mode: str, fake_llm_server: FakeLLMServer
) -> None:
    """Claude's thinking, answered or streamed over HTTP, ends as a ThinkingBlock with its
    signature ahead of the text."""
    fake_llm_server.script(
        "claude-test", Reply("185", reasoning="925 / 5 = 185", signature=SIGNATURE, chunk_size=4)
    )
    claude = AnthropicProvider(
        "claude-test", api_key="sk-test", base_url=fake_llm_server.anthropic_base_url
    )
    llm = ReliableLLM(models={"claude": claude})
    question = [_user(TextBlock(text="What is 925 / 5?"))]
    try:
        if mode == "chat":
            last = llm.chat(question)
        else:
            *_, last = llm.stream_chat(question)
    finally:
        claude.close()

    thinking, text = last.message.blocks
    assert isinstance(thinking, ThinkingBlock) and isinstance(text, TextBlock)
    assert (thinking.content, thinking.additional_information) == (
        "925 / 5 = 185",
        {"signature": SIGNATURE, "provider": "anthropic"},
    )
    assert text.text == "185"


class _StreamingThinkingLLM(_ThinkingLLM):
    """Streams cumulative responses whose blocks hold the thinking, then the text."""

    @llm_chat_callback()
    def stream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseGen:
        def gen() -> Iterator[LIChatResponse]:
            thinking = ThinkingBlock(
                content="A red pixel.", additional_information={"signature": "s"}
            )
            for text in ("Re", "Red."):
                blocks = [thinking, TextBlock(text=text)]
                message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)
                yield LIChatResponse(message=message, delta=text[-2:] if text == "Red." else text)

        return gen()


def test_a_wrapped_llama_index_llms_streamed_thinking_comes_back() -> None:
    """A wrapped LLM's stream ends with its thinking as a signed reasoning part."""
    manager = LLMManager()
    manager.register_model("wrapped", LlamaIndexLLMProvider(_StreamingThinkingLLM(), name="li"))

    stream = manager.stream([Message.user("Colour?")])
    text = "".join(chunk.text for chunk in stream)

    assert text == "Red."
    assert stream.response is not None
    assert stream.response.reasoning == (ReasoningPart("A red pixel.", "s", None, "li"),)
