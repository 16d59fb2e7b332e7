"""Reasoning as real servers sent it (byte-exact transcripts of the corpus), decoded with its
issuer and, for Anthropic, its signature, streamed or not."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from reliable_llm import ChatRequest, ChatResponse, Message, ReasoningPart, StreamAccumulator
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers import _anthropic_wire as anthropic_wire
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing.fake_server import FakeLLMServer, Transcript
from tests.wire.corpus import DIRECTORY

REQUEST = ChatRequest((Message.user("hi"),))

# anthropic_thinking.sse: the thinking_delta texts and the signature_delta, as sent.
CLAUDE_THINKING = "The previous result was 925. Now I need to divide that by 5.\n\n925 ÷ 5 = 185"
CLAUDE_SIGNATURE = (
    "EvQBCkYICxgCKkAxhD4NUKFzudtZ6NzbZdEiBACIScTzqjPViM596iWLZIk4EFKYYBj3B6Ptl3b0dcQv/VeJBNbejNWIWR"
    "Bn+KPNEgz6HWtKx7p+QRgKsEoaDGjsiqfht7gTRFYHiyIwD1VSmNqHxv3wy8KEMP+LYb/TC4UH3H97tuoaADARFFcA0p"
    "hdfxnzKQxFnc9lwY+dKlzUsaKSUAFeu1bDL5ikZJ1vL0Fkz6JjoFke0L/wOJRIUDUlDUOFJ1tZ3ea7g6LGE/5hwuvWgL"
    "wewdcm64d+43l7F57XrOmqNd6flI2K/oPr/4yzNgvi/EhT6Ca17BgB"
)
# deepseek_tool_call.*: DeepSeek's reasoning_content, whole and streamed.
DEEPSEEK_JSON = (
    "The user is asking for the weather in San Francisco. I have a weather tool available that "
    "can get weather information for a location. I should use this tool with the location "
    'parameter set to "San Francisco". Let me call the weather function.'
)
DEEPSEEK_SSE = (
    "The user is asking for the weather in San Francisco. I need to use the weather tool to get "
    'this information. Let me invoke the weather tool with the location parameter set to "San '
    'Francisco".'
)


def _openrouter_reasoning() -> str:
    """OpenRouter's ``reasoning`` field (1,553 characters), read straight from the file."""
    body = json.loads((DIRECTORY / "openrouter_reasoning.json").read_text())
    return str(body["choices"][0]["message"]["reasoning"])


CASES = [
    ("anthropic_thinking.sse", ReasoningPart(CLAUDE_THINKING, CLAUDE_SIGNATURE, None, "anthropic")),
    ("deepseek_tool_call.json", ReasoningPart(DEEPSEEK_JSON, provider="openai")),
    ("deepseek_tool_call.sse", ReasoningPart(DEEPSEEK_SSE, provider="openai")),
    ("openrouter_reasoning.json", ReasoningPart(_openrouter_reasoning(), provider="openai")),
]


def _decode(file: str, server: FakeLLMServer, closing: list[SDKProvider]) -> ChatResponse:
    server.script("m", Transcript.from_file(DIRECTORY / file))
    provider: SDKProvider
    if file.startswith("anthropic"):
        provider = AnthropicProvider("m", api_key="k", base_url=server.anthropic_base_url)
    else:
        provider = OpenAIProvider("m", api_key="k", base_url=server.openai_base_url)
    closing.append(provider)
    if not file.endswith(".sse"):
        return provider.complete(REQUEST)
    acc = StreamAccumulator()
    for chunk in provider.stream(REQUEST):
        acc.add(chunk)
    return acc.response()


@pytest.mark.parametrize(("file", "reasoning"), CASES, ids=[c[0] for c in CASES])
def test_reasoning_is_decoded_as_issued(
    file: str, reasoning: ReasoningPart, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Each transcript's reasoning comes back whole, with its issuer and signature."""
    assert _decode(file, server, closing).reasoning == (reasoning,)


def test_streamed_reasoning_reaches_the_caller_as_it_comes(
    server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Claude's thinking deltas stream as reasoning text before the answer's text."""
    server.script("m", Transcript.from_file(DIRECTORY / "anthropic_thinking.sse"))
    provider = AnthropicProvider("m", api_key="k", base_url=server.anthropic_base_url)
    closing.append(provider)
    chunks = list(provider.stream(REQUEST))
    first_text = next(i for i, c in enumerate(chunks) if c.text)
    assert "".join(c.reasoning for c in chunks[:first_text]) == CLAUDE_THINKING
    assert chunks[-1].reasoning_parts == (
        ReasoningPart(CLAUDE_THINKING, CLAUDE_SIGNATURE, None, "anthropic"),
    )


def test_the_sdks_own_accumulation_gives_the_same_signed_thinking(server: FakeLLMServer) -> None:
    """Read by our JSON decoder from the SDK's accumulated message, the thinking block and its
    signature are the ones our stream decoder gives."""
    server.script("m", Transcript.from_file(DIRECTORY / "anthropic_thinking.sse"))
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0) as c:
        events = list(
            c.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    message: Any = None
    for event in events:
        message = accumulate_event(event=event, current_snapshot=message, json_bufs={})
    whole = anthropic_wire.parse_message(message, "anthropic", None)
    assert whole.reasoning == (ReasoningPart(CLAUDE_THINKING, CLAUDE_SIGNATURE, None, "anthropic"),)
