"""The wire corpus: byte-exact transcripts of what real servers sent, and what they mean.

Each file under ``transcripts/`` is one response body exactly as published by its source
(named here and in ``transcripts/README.md``); ``expected`` is the `ChatResponse` both of
our decoders must make of it, or the error class it must raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reliable_llm import (
    ChatResponse,
    OverloadedError,
    ProviderError,
    ServerError,
    ToolCall,
    Usage,
)

DIRECTORY = Path(__file__).parent / "transcripts"

_OPENAI_PY = "https://github.com/openai/openai-python/blob/e43b422412a9e96c9cc5192c61fffbe2d7e04836"
_VERCEL_AI = "https://github.com/vercel/ai/blob/ed857f50f112e23930b0c2dd8d532cc8bebbc911/packages"
_VERCEL_ANTHROPIC = f"{_VERCEL_AI}/anthropic/src"
_OPENCODE = (
    "https://github.com/anomalyco/opencode/blob/1808fe8628327c988cf620fc5d394164177cd18e/"
    "packages/llm/test/fixtures/recordings/openai-compatible-chat"
)
_MIRASCOPE = (
    "https://github.com/Mirascope/mirascope/blob/b3223fc3df0268983378a2d838b2663ba28f5f45/"
    "python/tests/e2e/output/cassettes"
)
_ASK_OPENAI = "https://github.com/g0t4/ask-openai.nvim/blob"
_ASK_OPENAI_SSE = (
    f"{_ASK_OPENAI}/d18a02d93df8941dd9d61f4055d0578dbd2f2555/lua/ask-openai/tools/tests/sse.lua"
)
_ASK_OPENAI_GPTOSS = f"{_ASK_OPENAI}/4e0045752c796aa786c2793a61d777ffdba057e4/notes/samples/gptoss"
_ANTHROPIC_PY = (
    "https://github.com/anthropics/anthropic-sdk-python/blob/"
    "009b035305e0724ce108ebd796935f91711fc6e1/tests/lib/streaming/fixtures"
)


@dataclass(frozen=True)
class Case:
    """One transcript: its file, protocol, source, and the answer (or error) it must give."""

    file: str
    protocol: Literal["openai", "anthropic"]
    source: str
    expected: ChatResponse | type[ProviderError]

    @property
    def path(self) -> Path:
        """Where the transcript is stored."""
        return DIRECTORY / self.file

    @property
    def streamed(self) -> bool:
        """Whether the transcript is an SSE stream (else one JSON body)."""
        return self.file.endswith(".sse")

    def __str__(self) -> str:
        return self.file


def _streamed_text(file: str) -> str:
    """The text of a recorded stream, read straight from its JSON lines (not by our decoder)."""
    lines = (DIRECTORY / file).read_text().splitlines()
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def _message_text(file: str) -> str:
    """The text of a recorded JSON answer, read straight from the file."""
    return str(json.loads((DIRECTORY / file).read_text())["choices"][0]["message"]["content"])


def _anthropic_text(file: str) -> str:
    """The text blocks of a recorded Anthropic message, read straight from the file."""
    blocks = json.loads((DIRECTORY / file).read_text())["content"]
    return "".join(b["text"] for b in blocks if b["type"] == "text")


_WEATHER_AND_STOCK = (
    '{"city": "Edinburgh", "country": "GB", "units": "c"}',
    '{"ticker": "AAPL", "exchange": "NASDAQ"}',
)

CASES: tuple[Case, ...] = (
    Case(
        "openai_chat.json",
        "openai",
        f"{_OPENAI_PY}/tests/lib/chat/test_completions.py#L44",
        ChatResponse(
            text="I'm unable to provide real-time weather updates. To get the current weather in "
            "San Francisco, I recommend checking a reliable weather website or app like the "
            "Weather Channel or a local news station.",
            finish_reason="stop",
            usage=Usage(14, 37),
            provider_model="gpt-4o-2024-08-06",
        ),
    ),
    Case(
        "openai_parallel_tools.json",
        "openai",
        f"{_OPENAI_PY}/tests/lib/chat/test_completions.py#L710",
        ChatResponse(
            tool_calls=(
                ToolCall("call_fdNz3vOBKYgOIpMdWotB9MjY", "GetWeatherArgs", _WEATHER_AND_STOCK[0]),
                ToolCall("call_h1DWI1POMJLb0KwIyQHWXD4p", "get_stock_price", _WEATHER_AND_STOCK[1]),
            ),
            finish_reason="tool_calls",
            usage=Usage(149, 60),
            provider_model="gpt-4o-2024-08-06",
        ),
    ),
    Case(
        "openai_parallel_tools.sse",
        "openai",
        f"{_OPENAI_PY}/.inline-snapshot/external/"
        "f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b.bin",
        ChatResponse(
            tool_calls=(
                ToolCall("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs", _WEATHER_AND_STOCK[0]),
                ToolCall("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price", _WEATHER_AND_STOCK[1]),
            ),
            finish_reason="tool_calls",
            usage=Usage(149, 60),
            provider_model="gpt-4o-2024-08-06",
        ),
    ),
    Case(
        "openai_refusal.json",
        "openai",
        f"{_OPENAI_PY}/tests/lib/chat/test_completions.py#L583",
        ChatResponse(
            text="I'm very sorry, but I can't assist with that.",
            finish_reason="refusal",
            usage=Usage(79, 12),
            provider_model="gpt-4o-2024-08-06",
        ),
    ),
    Case(
        "openai_refusal.sse",
        "openai",
        f"{_OPENAI_PY}/.inline-snapshot/external/"
        "173417d553406f034f643e5db3f8d591fb691ebac56f5ae39a22cc7d455c5353.bin",
        ChatResponse(
            text="I'm sorry, I can't assist with that request.",
            finish_reason="refusal",
            usage=Usage(79, 11),
            provider_model="gpt-4o-2024-08-06",
        ),
    ),
    Case(
        "openai_length_usage_chunk.sse",
        "openai",
        f"{_OPENAI_PY}/.inline-snapshot/external/"
        "4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin",
        ChatResponse(
            text='{"',
            finish_reason="length",
            usage=Usage(79, 1),
            provider_model="gpt-4o-2024-08-06",
        ),
    ),
    Case(
        "anthropic_basic.sse",
        "anthropic",
        f"{_ANTHROPIC_PY}/basic_response.txt",
        ChatResponse(
            text="Hello there!",
            finish_reason="stop",
            usage=Usage(11, 6),
            provider_model="claude-3-opus-latest",
        ),
    ),
    Case(
        "anthropic_tool_use.sse",
        "anthropic",
        f"{_ANTHROPIC_PY}/tool_use_response.txt",
        ChatResponse(
            text="I'll check the current weather in Paris for you.",
            tool_calls=(
                ToolCall("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", '{"location": "Paris"}'),
            ),
            finish_reason="tool_calls",
            usage=Usage(377, 65),
            provider_model="claude-sonnet-4-20250514",
        ),
    ),
    Case(
        "anthropic_refusal.sse",
        "anthropic",
        f"{_ANTHROPIC_PY}/refusal_response.txt",
        ChatResponse(finish_reason="refusal", usage=Usage(20, 0), provider_model="claude-opus-4-7"),
    ),
    Case(
        "azure_model_router.sse",
        "openai",
        f"{_VERCEL_AI}/openai/src/chat/__fixtures__/azure-model-router.1.chunks.txt",
        ChatResponse(
            text="Capital of Denmark.",
            finish_reason="stop",
            usage=Usage(15, 78, reasoning_tokens=64),
            provider_model="gpt-5-nano-2025-08-07",
        ),
    ),
    Case(
        "azure_text.json",
        "openai",
        f"{_MIRASCOPE}/test_call/azure-openai_completions_gpt_4o_mini/sync.yaml (response body)",
        ChatResponse(
            text="4200 + 42 equals 4242.",
            finish_reason="stop",
            usage=Usage(16, 11),
            provider_model="gpt-4o-mini-2024-07-18",
        ),
    ),
    Case(
        "azure_parallel_tool_calls.json",
        "openai",
        f"{_MIRASCOPE}/test_call_with_tools/azure-openai_completions_gpt_4o_mini/sync.yaml"
        " (first response body)",
        ChatResponse(
            tool_calls=(
                ToolCall(
                    "call_Ogl4xrgYelrGfioRoTJoXCF0",
                    "secret_retrieval_tool",
                    '{"password": "mellon"}',
                ),
                ToolCall(
                    "call_J8hE6f1cZ8sJIzw3FCswowSI",
                    "secret_retrieval_tool",
                    '{"password": "radiance"}',
                ),
            ),
            finish_reason="tool_calls",
            usage=Usage(75, 54),
            provider_model="gpt-4o-mini-2024-07-18",
        ),
    ),
    Case(
        "groq_text.sse",
        "openai",
        f"{_VERCEL_AI}/groq/src/__fixtures__/groq-text.chunks.txt",
        ChatResponse(
            text=_streamed_text("groq_text.sse"),
            finish_reason="stop",
            usage=Usage(45, 662),
            provider_model="llama-3.3-70b-versatile",
        ),
    ),
    Case(
        "groq_text.json",
        "openai",
        f"{_VERCEL_AI}/groq/src/__fixtures__/groq-text.json",
        ChatResponse(
            text=_message_text("groq_text.json"),
            finish_reason="stop",
            usage=Usage(45, 607),
            provider_model="llama-3.3-70b-versatile",
        ),
    ),
    Case(
        "groq_tool_call.sse",
        "openai",
        f"{_VERCEL_AI}/groq/src/__fixtures__/groq-tool-call.chunks.txt",
        ChatResponse(
            tool_calls=(ToolCall("tk85n1k4m", "weather", "{}"),),
            finish_reason="tool_calls",
            usage=Usage(210, 15),
            provider_model="llama-3.3-70b-versatile",
        ),
    ),
    Case(
        "groq_tool_call.json",
        "openai",
        f"{_VERCEL_AI}/groq/src/__fixtures__/groq-tool-call.json",
        ChatResponse(
            tool_calls=(ToolCall("ax9fskhev", "weather", "{}"),),
            finish_reason="tool_calls",
            usage=Usage(218, 15),
            provider_model="llama-3.3-70b-versatile",
        ),
    ),
    Case(
        "deepseek_tool_call.sse",
        "openai",
        f"{_VERCEL_AI}/deepseek/src/chat/__fixtures__/deepseek-tool-call.chunks.txt",
        ChatResponse(
            tool_calls=(
                ToolCall(
                    "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", '{"location": "San Francisco"}'
                ),
            ),
            finish_reason="tool_calls",
            usage=Usage(339, 83, cache_read_tokens=320, reasoning_tokens=39),
            provider_model="deepseek-reasoner",
        ),
    ),
    Case(
        "deepseek_tool_call.json",
        "openai",
        f"{_VERCEL_AI}/deepseek/src/chat/__fixtures__/deepseek-tool-call.json",
        ChatResponse(
            tool_calls=(
                ToolCall(
                    "call_00_9V0vrf86Pc9aelHCJMZqnJBo", "weather", '{"location": "San Francisco"}'
                ),
            ),
            finish_reason="tool_calls",
            usage=Usage(339, 92, cache_read_tokens=320, reasoning_tokens=48),
            provider_model="deepseek-reasoner",
        ),
    ),
    Case(
        "mistral_incremental_tool_call.sse",
        "openai",
        f"{_VERCEL_AI}/mistral/src/__fixtures__/mistral-incremental-tool-call.chunks.txt",
        ChatResponse(
            tool_calls=(
                ToolCall(
                    "chatcmpl-tool-9f149c74c42f265b",
                    "webSearchTool",
                    '{"query": "current Berlin weather"}',
                ),
            ),
            finish_reason="tool_calls",
            usage=Usage(171, 14, cache_read_tokens=128),
            provider_model="zai-glm-5-2",
        ),
    ),
    Case(
        "xai_tool_call.sse",
        "openai",
        f"{_VERCEL_AI}/xai/src/__fixtures__/xai-tool-call.chunks.txt",
        ChatResponse(
            tool_calls=(ToolCall("call_55117580", "weather", '{"location":"San Francisco"}'),),
            finish_reason="tool_calls",
            usage=Usage(291, 26, cache_read_tokens=290, reasoning_tokens=196),
            provider_model="grok-3-mini",
        ),
    ),
    Case(
        "anthropic_text.json",
        "anthropic",
        f"{_VERCEL_ANTHROPIC}/__fixtures__/anthropic-text.json",
        ChatResponse(
            text=_anthropic_text("anthropic_text.json"),
            finish_reason="stop",
            usage=Usage(12, 29),
            provider_model="claude-sonnet-4-5-20250929",
        ),
    ),
    Case(
        "anthropic_refusal.json",
        "anthropic",
        f"{_VERCEL_ANTHROPIC}/__fixtures__/anthropic-refusal.json",
        ChatResponse(finish_reason="refusal", usage=Usage(18, 5), provider_model="claude-fable-5"),
    ),
    Case(
        "anthropic_tool_no_args.json",
        "anthropic",
        f"{_VERCEL_ANTHROPIC}/__fixtures__/anthropic-tool-no-args.json",
        ChatResponse(
            text=_anthropic_text("anthropic_tool_no_args.json"),
            tool_calls=(ToolCall("toolu_01LRmxn9vGM1d2DZSDBowdZ1", "updateIssueList", "{}"),),
            finish_reason="tool_calls",
            usage=Usage(602, 93),
            provider_model="claude-3-opus-20240229",
        ),
    ),
    Case(
        "anthropic_thinking.sse",
        "anthropic",
        f"{_VERCEL_ANTHROPIC}/__fixtures__/anthropic-clear-thinking.1.chunks.txt",
        ChatResponse(
            text="925 \u00f7 5 = 185",
            finish_reason="stop",
            usage=Usage(69, 53),
            provider_model="claude-sonnet-4-5-20250929",
        ),
    ),
    Case(
        "anthropic_overloaded_first_event.sse",
        "anthropic",
        f"{_VERCEL_ANTHROPIC}/anthropic-language-model.test.ts"
        " ('should throw an api error when the first stream chunk is an overloaded error')",
        OverloadedError,
    ),
    Case(
        "openrouter_text.sse",
        "openai",
        f"{_OPENCODE}/openrouter-streams-text.json (response body)",
        ChatResponse(
            text="Hello!",
            finish_reason="stop",
            usage=Usage(21, 3),
            provider_model="openai/gpt-4o-mini",
        ),
    ),
    Case(
        "openrouter_tool_call.sse",
        "openai",
        f"{_OPENCODE}/openrouter-streams-tool-call.json (response body)",
        ChatResponse(
            tool_calls=(
                ToolCall("call_L7mHMq49ZSUTBHjLJfBIP2eT", "get_weather", '{"city":"Paris"}'),
            ),
            finish_reason="tool_calls",
            usage=Usage(67, 5),
            provider_model="openai/gpt-4o-mini",
        ),
    ),
    Case(
        "openrouter_reasoning.json",
        "openai",
        "https://github.com/spencertipping/ruby-agent/blob/"
        "0736cd5407619bc95526b4c507c822d3e80cecf6/doc/api.md#L54-L109 (a curl reply piped "
        "through jq .)",
        ChatResponse(
            text=_message_text("openrouter_reasoning.json"),
            finish_reason="stop",
            usage=Usage(18, 1067, reasoning_tokens=826),
            provider_model="google/gemini-3-flash-preview",
        ),
    ),
    Case(
        "openrouter_mid_stream_error.sse",
        "openai",
        "https://openrouter.ai/docs/api/reference/streaming#handling-errors-during-streaming",
        ServerError,
    ),
    Case(
        "vllm_tool_call.sse",
        "openai",
        f"{_ASK_OPENAI}/8cfd09a617b9d07afd2c09d0b84a4c2df001dc48/lua/ask-openai/tools/notes/vllm-qwen.md",
        ChatResponse(
            tool_calls=(
                ToolCall(
                    "chatcmpl-tool-ca99dda515524c6abe47d1ea22813507",
                    "run_command",
                    '{"command": "ls"}',
                ),
            ),
            finish_reason="tool_calls",
            usage=None,
            provider_model=None,
        ),
    ),
    Case(
        "vllm_length.json",
        "openai",
        "https://github.com/llm-d-incubation/llm-d-modelservice/blob/"
        "4f3faaf606d9f16f0952a932d4f62c29b9fb5b41/examples/README.md#L167 (before the shell's "
        "'(base)' prompt)",
        ChatResponse(
            text=_message_text("vllm_length.json"),
            finish_reason="length",
            usage=Usage(7, 50),
            provider_model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        ),
    ),
    Case(
        "ollama_text.sse",
        "openai",
        f"{_ASK_OPENAI_SSE}#L197-L204",
        ChatResponse(
            text="My name is Neo Vim.",
            finish_reason="stop",
            usage=None,
            provider_model="qwen2.5-coder:7b-instruct-q8_0",
        ),
    ),
    Case(
        "ollama_parallel_tool_calls.sse",
        "openai",
        f"{_ASK_OPENAI_SSE}#L234-L237",
        ChatResponse(
            tool_calls=(
                ToolCall("call_809l7n8f", "run_command", '{"command":"ls -la"}'),
                ToolCall(
                    "call_oqp1e2a1",
                    "run_command",
                    '{"command":"ls -la","cwd":"/path/to/directory"}',
                ),
            ),
            finish_reason="tool_calls",
            usage=None,
            provider_model="qwen2.5-coder:7b-instruct-q8_0",
        ),
    ),
    Case(
        "llamacpp_text.json",
        "openai",
        f"{_ASK_OPENAI_GPTOSS}/test.full.json",
        ChatResponse(
            text=_message_text("llamacpp_text.json"),
            finish_reason="stop",
            usage=Usage(82, 43),
            provider_model="gpt-3.5-turbo",
        ),
    ),
    Case(
        "llamacpp_text.sse",
        "openai",
        f"{_ASK_OPENAI_GPTOSS}/test.stream.json",
        ChatResponse(
            text=_streamed_text("llamacpp_text.sse"),
            finish_reason="stop",
            usage=Usage(82, 43),
            provider_model="gpt-3.5-turbo",
        ),
    ),
    Case(
        "lmstudio_tool_call.json",
        "openai",
        "https://github.com/lmstudio-ai/docs/blob/2e643a417b83cb9261b6337df33fc65a189e351a/"
        "1_developer/3_openai-compat/tools.mdx#L414-L445",
        ChatResponse(
            tool_calls=(
                ToolCall(
                    "365174485",
                    "search_products",
                    '{"query":"dell","category":"electronics","max_price":50}',
                ),
            ),
            finish_reason="tool_calls",
            usage=Usage(263, 34),
            provider_model="lmstudio-community/qwen2.5-7b-instruct",
        ),
    ),
    Case(
        "ollama_text.json",
        "openai",
        "https://github.com/ollama/ollama/blob/fb30760996871fa9460115c753afd2c60d4ab0f7/"
        "openai/openai_test.go#L486 (TestToChatCompletion_WithoutLogprobs, encoded by "
        "openai.ToChatCompletion and middleware/openai.go ChatWriter.writeResponse)",
        ChatResponse(
            text="Hello",
            finish_reason="stop",
            usage=Usage(5, 1),
            provider_model="test-model",
        ),
    ),
)
