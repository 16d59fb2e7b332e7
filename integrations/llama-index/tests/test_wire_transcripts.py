"""ReliableLLM over recorded wire transcripts: streamed tool calls assembled whole."""

from __future__ import annotations

from pathlib import Path

from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.reliable import ReliableLLM

from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.testing.fake_server import FakeLLMServer, Transcript

TRANSCRIPTS = Path(__file__).resolve().parents[3] / "tests" / "wire" / "transcripts"


def test_stream_chat_assembles_recorded_parallel_tool_calls(
    fake_llm_server: FakeLLMServer,
) -> None:
    """The last streamed response carries both calls of OpenAI's recorded two-call answer."""
    fake_llm_server.script(
        "gpt-test", Transcript.from_file(TRANSCRIPTS / "openai_parallel_tools.sse")
    )
    provider = OpenAIProvider(
        "gpt-test", api_key="sk-test", base_url=fake_llm_server.openai_base_url
    )
    llm = ReliableLLM(models={"primary": provider}, model="primary", enable_caching=False)

    responses = list(llm.stream_chat([ChatMessage(role="user", content="weather and stock?")]))
    provider.close()

    calls = llm.get_tool_calls_from_response(responses[-1], error_on_no_tool_call=False)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [
        ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
        ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
    ]


def test_stream_chat_returns_a_recorded_anthropic_refusal_as_a_refusal(
    fake_llm_server: FakeLLMServer,
) -> None:
    """Anthropic's recorded refusal stream ends with finish reason refusal, not an error."""
    fake_llm_server.script(
        "claude-test", Transcript.from_file(TRANSCRIPTS / "anthropic_refusal.sse")
    )
    provider = AnthropicProvider(
        "claude-test", api_key="sk-ant-test", base_url=fake_llm_server.anthropic_base_url
    )
    llm = ReliableLLM(models={"primary": provider}, model="primary", enable_caching=False)

    responses = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
    provider.close()

    assert responses[-1].additional_kwargs["finish_reason"] == "refusal"
    assert responses[-1].message.content in ("", None)
