"""LangChain chains with images, PDFs and Claude's thinking, across a fallback over the wire.

Our OpenAI and Anthropic providers talk HTTP to the local fake server, which records each
request body and rejects, with the real API's 400, content its API does not take; the tests
read the exact bytes each provider received.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_reliable_llm import ReliableChatModel, ReliableChatModelError
from sample_media import b64, pdf_bytes, png_bytes

from reliable_llm import FailureReason
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, overloaded, server_error

PNG = png_bytes()
PDF = pdf_bytes()
SIGNATURE = "EqQBCkYIBxgCKkDmnq3B5LwPzE0M4mBJ1m7Qm8pN"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A fresh fake server for the test."""
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def providers(server: FakeLLMServer) -> AsyncIterator[dict[str, Any]]:
    """``gpt`` (OpenAI) and ``claude`` (Anthropic) on the fake server, closed after the test
    inside its event loop."""
    made = {
        "gpt": OpenAIProvider("gpt-test", api_key="sk-test", base_url=server.openai_base_url),
        "claude": AnthropicProvider(
            "claude-test", api_key="sk-ant-test", base_url=server.anthropic_base_url
        ),
    }
    yield made
    for provider in made.values():
        await provider.aclose()


def _chat(providers: dict[str, Any], *order: str) -> ReliableChatModel:
    return ReliableChatModel(
        models={name: providers[name] for name in order},
        max_retries=1,
        clock=FakeClock(),
        enable_caching=False,
    )


def _bodies(server: FakeLLMServer, model: str) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.model == model and r.body is not None]


async def test_chain_with_a_png_falls_back_to_claude_with_the_same_bytes(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """A prompt | model | parser chain sends a base64 PNG and a question; OpenAI answers 503
    twice, Claude receives an image block with the same bytes and its answer comes back."""
    server.script("gpt-test", server_error(503), server_error(503))
    server.script("claude-test", Reply("A small red square."))
    prompt = ChatPromptTemplate.from_messages(
        [
            (
                "human",
                [
                    {"type": "text", "text": "{question}"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,{png}"}},
                ],
            )
        ]
    )
    chain = prompt | _chat(providers, "gpt", "claude") | StrOutputParser()

    answer = await chain.ainvoke({"question": "What is in this image?", "png": b64(PNG)})

    assert answer == "A small red square."
    assert len(_bodies(server, "gpt-test")) == 2
    (claude,) = _bodies(server, "claude-test")
    text, image = claude["messages"][0]["content"]
    assert text == {"type": "text", "text": "What is in this image?"}
    assert image["type"] == "image"
    assert image["source"]["type"] == "base64"
    assert image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == PNG


def test_a_pdf_falls_back_to_claude_as_a_document_with_the_same_bytes(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """A standard file block with a PDF: OpenAI gets a file part, then down, Claude a
    document block with the same bytes; the answer and the fallback are reported."""
    server.script("gpt-test", server_error(503), server_error(503))
    server.script("claude-test", Reply("A one-page dummy PDF."))
    message = HumanMessage(
        [
            {"type": "text", "text": "Summarise this document."},
            {
                "type": "file",
                "base64": b64(PDF),
                "mime_type": "application/pdf",
                "filename": "d.pdf",
            },
        ]
    )

    answer = _chat(providers, "gpt", "claude").invoke([message])

    assert answer.text == "A one-page dummy PDF."
    assert answer.response_metadata["fallback_from"] == ["gpt"]
    openai_file = _bodies(server, "gpt-test")[0]["messages"][0]["content"][1]
    assert openai_file == {
        "type": "file",
        "file": {"filename": "d.pdf", "file_data": f"data:application/pdf;base64,{b64(PDF)}"},
    }
    (claude,) = _bodies(server, "claude-test")
    document = claude["messages"][0]["content"][1]
    assert document["type"] == "document"
    assert document["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(document["source"]["data"]) == PDF


def test_claude_thinking_comes_back_and_is_replayed_with_its_signature(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """Claude's thinking returns as a reasoning block with its signature; the AIMessage sent
    back in the history reaches Claude as the thinking block it issued."""
    server.script("claude-test", Reply("185", reasoning="925 / 5 = 185", signature=SIGNATURE))
    server.script("claude-test", Reply("Yes."))
    chat = _chat(providers, "claude", "gpt")

    first = chat.invoke("What is 925 / 5?")
    chat.invoke([HumanMessage("What is 925 / 5?"), first, HumanMessage("Sure?")])

    assert first.text == "185"
    assert first.content_blocks[0] == {
        "type": "reasoning",
        "reasoning": "925 / 5 = 185",
        "extras": {"signature": SIGNATURE, "provider": "anthropic"},
    }
    assert _bodies(server, "claude-test")[1]["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "925 / 5 = 185", "signature": SIGNATURE},
            {"type": "text", "text": "185"},
        ],
    }


def test_thinking_and_cache_marker_are_stripped_for_an_openai_fallback(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """A Claude conversation (cached system prompt, signed thinking) falls back to OpenAI:
    the OpenAI request carries neither, and response_metadata says what was stripped."""
    server.script("claude-test", overloaded(), overloaded())
    server.script("gpt-test", Reply("4077"))
    history = [
        SystemMessage(
            [
                {
                    "type": "text",
                    "text": "You are a careful mathematician.",
                    "cache_control": {"type": "ephemeral"},
                }
            ]
        ),
        HumanMessage("What is 27 * 453?"),
        AIMessage(
            [
                {"type": "thinking", "thinking": "27 * 453 = 12231.", "signature": SIGNATURE},
                {"type": "text", "text": "12231"},
            ]
        ),
        HumanMessage("And divided by 3?"),
    ]

    answer = _chat(providers, "claude", "gpt").invoke(history)

    assert (answer.text, answer.response_metadata["model"]) == ("4077", "gpt")
    assert _bodies(server, "claude-test")[0]["system"][0]["cache_control"] == {"type": "ephemeral"}
    (openai,) = _bodies(server, "gpt-test")
    assert openai["messages"] == [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": "What is 27 * 453?"},
        {"role": "assistant", "content": "12231"},
        {"role": "user", "content": "And divided by 3?"},
    ]
    changes = answer.response_metadata["content_changes"]
    assert {(c["model"], c["action"], c["part"]) for c in changes} == {
        ("gpt", "stripped", "cache_control"),
        ("gpt", "stripped", "reasoning"),
    }


def test_a_text_only_model_is_skipped_for_an_image(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """A text-only model first in the route is never called for an image; Claude answers."""
    server.script("claude-test", Reply("A pixel."))
    prompts: list[str] = []

    def text_only(prompt: str) -> str:
        prompts.append(prompt)
        return "never"

    chat = ReliableChatModel(
        models={"text": text_only, "claude": providers["claude"]}, enable_caching=False
    )
    image = {"type": "image", "base64": b64(PNG), "mime_type": "image/png"}

    answer = chat.invoke([HumanMessage([image])])

    assert answer.text == "A pixel."
    assert answer.response_metadata["fallback_from"] == ["text"]
    assert prompts == []
    (skip,) = [c for c in answer.response_metadata["content_changes"] if c["action"] == "skipped"]
    assert skip["model"] == "text" and "takes no images" in skip["detail"]


def test_an_image_no_model_takes_fails_with_unsupported_input() -> None:
    """With only text models, an image request raises the LangChain-catchable error whose
    failures say unsupported_input, and no model is called."""
    calls: list[str] = []
    chat = ReliableChatModel(models={"a": calls.append, "b": calls.append})
    image = {"type": "image", "url": "https://example.com/cat.png"}

    with pytest.raises(ReliableChatModelError) as caught:
        chat.invoke([HumanMessage([image])])

    failures = caught.value.failures
    assert [(f.model, f.reason) for f in failures] == [
        ("a", FailureReason.UNSUPPORTED_INPUT),
        ("b", FailureReason.UNSUPPORTED_INPUT),
    ]
    assert calls == []


def test_prompt_cache_usage_from_claude_reaches_usage_metadata(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """Claude's cache_read / cache_creation input tokens appear in LangChain's
    input_token_details, and input_tokens counts them."""
    server.script(
        "claude-test",
        Reply("ok", usage=(10, 2), cache_read_tokens=1200, cache_creation_tokens=300),
    )

    usage = _chat(providers, "claude").invoke("hi").usage_metadata

    assert usage == {
        "input_tokens": 1510,
        "output_tokens": 2,
        "total_tokens": 1512,
        "input_token_details": {"cache_read": 1200, "cache_creation": 300},
    }


def test_streamed_claude_thinking_merges_into_one_signed_reasoning_block(
    server: FakeLLMServer, providers: dict[str, Any]
) -> None:
    """Claude streams its thinking (thinking_delta, then signature_delta): the chunks merge
    into one reasoning block with the signature, before the answer's text."""
    server.script(
        "claude-test", Reply("185", reasoning="925 / 5 = 185", signature=SIGNATURE, chunk_size=4)
    )
    chunks = list(_chat(providers, "claude").stream("What is 925 / 5?"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk

    assert (
        len([c for c in chunks if c.content_blocks and c.content_blocks[0]["type"] == "reasoning"])
        > 1
    )
    assert merged.text == "185"
    blocks = [{k: v for k, v in b.items() if k != "index"} for b in merged.content_blocks]
    assert blocks == [
        {
            "type": "reasoning",
            "reasoning": "925 / 5 = 185",
            "extras": {"signature": SIGNATURE, "provider": "anthropic"},
        },
        {"type": "text", "text": "185"},
    ]
