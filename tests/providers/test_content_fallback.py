"""Images, documents, reasoning and prompt-cache markers across a fallback, over the wire.

The official SDK providers talk HTTP to the local fake server, which records each request's
exact body and rejects, with the 400 the real API sends, any content shape that API does not
take (a ``cache_control`` marker or a thinking block sent to OpenAI, say).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from reliable_llm import (
    AllModelsFailedError,
    AudioPart,
    CacheControl,
    FailureReason,
    FilePart,
    ImagePart,
    LLMManager,
    Message,
    ModelCapabilities,
    ReasoningPart,
    RetryPolicy,
    TextPart,
    ToolCall,
)
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, overloaded, server_error

from .conftest import ask

# A real 1x1 PNG (the bytes of every PNG encoder's smallest image) and a minimal PDF.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
SIGNATURE = "EqQBCkYIBxgCKkDmnq3B5LwPzE0M4mBJ1m7Qm8pN"


def _manager(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock, first: str
) -> LLMManager:
    """``gpt`` (OpenAI) and ``claude`` (Anthropic) on the fake server; ``first`` is active."""
    gpt = OpenAIProvider("gpt-test", api_key="sk-test", base_url=server.openai_base_url)
    claude = AnthropicProvider("claude-test", api_key="sk-test", base_url=server.anthropic_base_url)
    closing += [gpt, claude]
    manager = LLMManager(
        retry=RetryPolicy(max_retries=1, initial_delay=0.1, jitter=0.0),
        enable_caching=False,
        clock=clock,
    )
    manager.register_model("gpt", gpt)
    manager.register_model("claude", claude)
    manager.set_active_model(first)
    manager.set_fallback_chain(["claude" if first == "gpt" else "gpt"])
    return manager


def _bodies(server: FakeLLMServer, model: str) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.model == model and r.body is not None]


@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
async def test_image_falls_back_from_openai_to_anthropic_with_the_same_bytes(
    mode: str, server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """A base64 PNG and a question, OpenAI down with 503s: Claude gets the same image bytes."""
    server.script("gpt-test", server_error(), server_error())
    server.script("claude-test", Reply("A single pixel."))
    manager = _manager(server, closing, clock, "gpt")
    question = Message.user(
        [TextPart("What is in this image?"), ImagePart.from_bytes(PNG, "image/png")]
    )

    response = await ask(manager, mode, [question])

    assert (response.text, response.model, response.fallback_from) == (
        "A single pixel.",
        "claude",
        ("gpt",),
    )
    (openai_body,) = _bodies(server, "gpt-test")[:1]
    assert openai_body["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    }
    (claude_body,) = _bodies(server, "claude-test")
    image = claude_body["messages"][0]["content"][1]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == PNG


async def test_pdf_falls_back_from_openai_to_anthropic_as_a_document(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """A PDF sent to OpenAI as a file part reaches the Claude fallback as a document block."""
    server.script("gpt-test", server_error(), server_error())
    server.script("claude-test", Reply("It is empty."))
    manager = _manager(server, closing, clock, "gpt")
    pdf = FilePart.from_bytes(PDF, "application/pdf", filename="report.pdf")

    response = manager.chat([Message.user([TextPart("Summarise."), pdf])])

    assert (response.text, response.model) == ("It is empty.", "claude")
    openai_part = _bodies(server, "gpt-test")[0]["messages"][0]["content"][1]
    assert openai_part["file"]["filename"] == "report.pdf"
    assert openai_part["file"]["file_data"] == (
        "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    )
    (claude_body,) = _bodies(server, "claude-test")
    document = claude_body["messages"][0]["content"][1]
    assert document["type"] == "document"
    assert document["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(document["source"]["data"]) == PDF


def _claude_conversation() -> list[Message]:
    return [
        Message.system(
            [TextPart("You are a careful mathematician.", cache_control=CacheControl())]
        ),
        Message.user("What is 27 * 453?"),
        Message.assistant(
            [
                ReasoningPart("27 * 453 = 12231.", signature=SIGNATURE, provider="anthropic"),
                TextPart("12231"),
            ]
        ),
        Message.user("And divided by 3?"),
    ]


async def test_claude_thinking_and_cache_marker_are_stripped_for_an_openai_fallback(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """Claude overloaded: the OpenAI request has no signature, no thinking and no
    cache_control, and the response says what was stripped."""
    server.script("claude-test", overloaded(), overloaded())
    server.script("gpt-test", Reply("4077"))
    manager = _manager(server, closing, clock, "claude")
    thinking = {"type": "enabled", "budget_tokens": 2048}
    claude = AnthropicProvider(
        "claude-test",
        api_key="sk-test",
        base_url=server.anthropic_base_url,
        default_params={"thinking": thinking},  # enabled for this model only
    )
    closing.append(claude)
    manager.register_model("claude", claude, replace=True)

    response = manager.chat(_claude_conversation())

    assert (response.text, response.model, response.fallback_from) == ("4077", "gpt", ("claude",))
    claude_body = _bodies(server, "claude-test")[0]
    assert claude_body["thinking"] == thinking
    assert claude_body["system"] == [
        {
            "type": "text",
            "text": "You are a careful mathematician.",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert claude_body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "27 * 453 = 12231.",
        "signature": SIGNATURE,
    }
    (openai_body,) = _bodies(server, "gpt-test")
    assert "thinking" not in openai_body
    assert openai_body["messages"] == [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": "What is 27 * 453?"},
        {"role": "assistant", "content": "12231"},
        {"role": "user", "content": "And divided by 3?"},
    ]
    stripped = {(c.model, c.action, c.part) for c in response.content_changes}
    assert stripped == {("gpt", "stripped", "cache_control"), ("gpt", "stripped", "reasoning")}


@pytest.mark.parametrize("mode", ["sync", "stream"])
async def test_signed_thinking_comes_back_and_is_replayed_to_claude_unchanged(
    mode: str, server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """Claude's thinking returns with its signature and, appended to the conversation, is
    sent back to Claude exactly as issued (Anthropic requires it in a tool-use loop)."""
    server.script("claude-test", Reply("185", reasoning="925 / 5 = 185", signature=SIGNATURE))
    server.script("claude-test", Reply("Yes."))
    manager = _manager(server, closing, clock, "claude")
    turn = [Message.user("What is 925 / 5?")]

    first = await ask(manager, mode, turn)
    await ask(manager, mode, [*turn, first.message, Message.user("Sure?")])

    assert first.reasoning == (ReasoningPart("925 / 5 = 185", SIGNATURE, None, "anthropic"),)
    second_body = _bodies(server, "claude-test")[1]
    assert second_body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "925 / 5 = 185", "signature": SIGNATURE},
            {"type": "text", "text": "185"},
        ],
    }


async def test_prompt_cache_usage_is_reported(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """Tokens read from and written to Anthropic's prompt cache are reported in the usage."""
    server.script(
        "claude-test",
        Reply("ok", usage=(10, 2), cache_read_tokens=1200, cache_creation_tokens=300),
    )
    manager = _manager(server, closing, clock, "claude")

    usage = manager.chat(_claude_conversation()[:2]).usage

    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_creation_tokens) == (
        1510,
        1200,
        300,
    )


@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
async def test_a_text_only_model_is_skipped_for_an_image_without_blame(
    mode: str, server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """A text-only model ahead in the route is skipped with unsupported_input: never called,
    its breaker untouched, the reason in the response."""
    text_only = ScriptedModel(default="never", capabilities=ModelCapabilities())
    claude = AnthropicProvider("claude-test", api_key="sk-test", base_url=server.anthropic_base_url)
    closing.append(claude)
    server.script("claude-test", Reply("A pixel."))
    manager = LLMManager(clock=clock)
    manager.register_model("text", text_only)
    manager.register_model("claude", claude)
    manager.set_fallback_chain(["claude"])

    response = await ask(manager, mode, [Message.user([ImagePart.from_bytes(PNG, "image/png")])])

    assert (response.text, response.fallback_from) == ("A pixel.", ("text",))
    assert response.fallback_reasons == ("unsupported_input",)
    assert text_only.calls == []
    assert manager.get_model_info("text")["breaker"]["failure_count"] == 0
    (skip,) = [c for c in response.content_changes if c.action == "skipped"]
    assert skip.model == "text" and "takes no images" in skip.detail


def test_no_model_takes_the_input_fails_with_unsupported_input(clock: FakeClock) -> None:
    """When no model of the route takes the request, AllModelsFailedError says why, model by
    model, and no model was called."""
    audio_less = ScriptedModel(capabilities=ModelCapabilities(image=frozenset({"data"})))
    manager = LLMManager(clock=clock)
    manager.register_model("a", audio_less)
    manager.register_model("b", lambda prompt: "text only")
    manager.set_fallback_chain(["b"])

    with pytest.raises(AllModelsFailedError) as caught:
        manager.chat([Message.user([ImagePart(url="https://example.com/cat.png")])])

    reasons = [(f.model, f.reason) for f in caught.value.failures]
    assert reasons == [
        ("a", FailureReason.UNSUPPORTED_INPUT),
        ("b", FailureReason.UNSUPPORTED_INPUT),
    ]
    assert "never fetches a URL" in str(caught.value)
    assert audio_less.calls == []


async def test_audio_skips_claude_and_reaches_an_openai_audio_model(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """Audio is skipped for Claude (no audio input) and sent to OpenAI's audio model as
    input_audio with the same bytes."""
    claude = AnthropicProvider("claude-test", api_key="sk-test", base_url=server.anthropic_base_url)
    audio_model = OpenAIProvider(
        "gpt-4o-audio-preview", api_key="sk-test", base_url=server.openai_base_url
    )
    closing += [claude, audio_model]
    server.script("gpt-4o-audio-preview", Reply("Someone says hello."))
    manager = LLMManager(clock=clock)
    manager.register_model("claude", claude)
    manager.register_model("audio", audio_model)
    manager.set_fallback_chain(["audio"])
    wav = AudioPart.from_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav")

    response = manager.chat([Message.user([TextPart("Transcribe."), wav])])

    assert (response.text, response.fallback_from) == ("Someone says hello.", ("claude",))
    assert server.request_count("claude-test") == 0
    (body,) = _bodies(server, "gpt-4o-audio-preview")
    assert body["messages"][0]["content"][1] == {
        "type": "input_audio",
        "input_audio": {"data": wav.data, "format": "wav"},
    }


async def test_a_tool_result_image_reaches_openai_in_a_user_turn(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """A tool result with an image, Claude down: OpenAI gets the text result, then the image
    in a user turn after it (its tool messages carry text only), and accepts the request."""
    server.script("claude-test", overloaded(), overloaded())
    server.script("gpt-test", Reply("A chart with one bar."))
    manager = _manager(server, closing, clock, "claude")
    image = ImagePart.from_bytes(PNG, "image/png")
    conversation = [
        Message.user("Plot the sales."),
        Message.assistant("", [ToolCall("toolu_1", "plot", "{}")]),
        Message.tool([TextPart("plotted"), image], "toolu_1"),
    ]

    response = manager.chat(conversation)

    assert response.text == "A chart with one bar."
    claude_result = _bodies(server, "claude-test")[0]["messages"][2]["content"][0]
    assert claude_result["content"][1]["source"]["data"] == image.data
    (openai_body,) = _bodies(server, "gpt-test")
    assert openai_body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "plotted"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image.data_url}}]},
    ]
    assert ("gpt", "converted", "tool_result") in {
        (c.model, c.action, c.part) for c in response.content_changes
    }


async def test_openai_compatible_reasoning_streams_and_is_never_sent_back(
    server: FakeLLMServer, closing: list[SDKProvider], clock: FakeClock
) -> None:
    """DeepSeek-style reasoning_content streams as reasoning; replayed, it is stripped (such
    servers reject it back) and the next request carries the answer text only."""
    from reliable_llm.providers import preset

    deepseek = preset("deepseek", "deepseek-reasoner", api_key="k", base_url=server.openai_base_url)
    closing.append(deepseek)  # type: ignore[arg-type]
    server.script("deepseek-reasoner", Reply("4", reasoning="2 + 2 = 4"), Reply("Yes."))
    manager = LLMManager(clock=clock)
    manager.register_model("deepseek", deepseek)

    stream = manager.stream([Message.user("2 + 2?")])
    reasoning = "".join(chunk.reasoning for chunk in stream)
    first = stream.response
    assert first is not None
    manager.chat([Message.user("2 + 2?"), first.message, Message.user("Sure?")])

    assert reasoning == "2 + 2 = 4"
    assert first.reasoning == (ReasoningPart("2 + 2 = 4", provider="deepseek"),)
    second = _bodies(server, "deepseek-reasoner")[1]
    assert second["messages"][1] == {"role": "assistant", "content": "4"}
