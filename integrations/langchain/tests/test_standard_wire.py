"""LangChain's standard integration suite over the wire: our OpenAI and Anthropic providers
talking HTTP to the local fake server (127.0.0.1), with the official SDKs in between.

The fake server answers from scripts; for the suite it needs answers that depend on the
request (call the requested tool, return JSON for a schema), so a responder
(`FakeLLMServer.set_responder`) answers each request with `SmartFakeModel`, after translating the
wire body (OpenAI chat completions or Anthropic messages) into a `ChatRequest`.

The content tests run here over HTTP: images (base64 and URL), PDFs, images and PDFs in tool
results, Anthropic-native inputs (thinking blocks, ``cache_control``), and audio. Each route
ends with an OpenAI audio model (``gpt-4o-audio-preview``): the route skips the models that
cannot take a request's parts (Claude takes no audio; ``gpt-test`` is not an audio model)
and the request lands on one that can. The usage-detail tests run too: prompts carrying a
marker make the server report prompt-cache reads and writes (Anthropic) or cached and
reasoning tokens (OpenAI) in its wire's fields. Skips are those of `test_standard.py`:
serialization (live providers), environment init and VCR benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_reliable_llm import ReliableChatModel
from langchain_reliable_llm.testing import SmartFakeModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from reliable_llm import ChatRequest, Message, Tool, ToolCall
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.testing import FakeClock
from reliable_llm.testing.fake_server import (
    FakeLLMServer,
    RecordedRequest,
    Reply,
    Step,
    ToolCallSpec,
    server_error,
)

_SERVER: FakeLLMServer | None = None
_DOWN = "gpt-down"
_AUDIO = "gpt-4o-audio-preview"
# Prompt markers for the suite's usage-detail tests: the server then reports input tokens
# read from / written to the prompt cache, or output tokens spent reasoning, each in its
# wire's own fields (the fake server spells them as OpenAI and Anthropic do).
_USAGE_MARKERS = {
    "[cache-read]": ("cache_read_tokens", 1024),
    "[cache-write]": ("cache_creation_tokens", 2048),
    "[reasoning]": ("reasoning_tokens", 64),
}
pytestmark = pytest.mark.usefixtures("offline_standard_media")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text", "")
        for b in content or ()
        if isinstance(b, Mapping) and b.get("type") == "text"
    )


def _openai_request(body: Mapping[str, Any]) -> ChatRequest:
    messages = []
    for m in body["messages"]:
        role = "system" if m["role"] == "developer" else m["role"]
        calls = tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in m.get("tool_calls") or ()
        )
        messages.append(Message(role, _text(m.get("content")), calls, m.get("tool_call_id")))
    tools = tuple(
        Tool(
            t["function"]["name"],
            t["function"].get("description", ""),
            t["function"].get("parameters") or {},
        )
        for t in body.get("tools") or ()
    )
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        choice = choice["function"]["name"]
    stop = body.get("stop")
    return ChatRequest(
        tuple(messages),
        tools=tools,
        tool_choice=choice,
        response_format=body.get("response_format"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop) if stop else None,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
    )


def _anthropic_request(body: Mapping[str, Any]) -> ChatRequest:
    messages = [Message.system(_text(body["system"]))] if body.get("system") else []
    for m in body["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if m["role"] == "assistant":
            calls = [
                ToolCall(b["id"], b["name"], json.dumps(b.get("input") or {}))
                for b in blocks
                if b["type"] == "tool_use"
            ]
            messages.append(Message.assistant(_text(blocks), calls))
            continue
        for b in blocks:
            if b["type"] == "tool_result":
                messages.append(Message.tool(_text(b.get("content")), b["tool_use_id"]))
        text = _text(blocks)
        if text or not any(b["type"] == "tool_result" for b in blocks):
            messages.append(Message.user(text))
    tools = tuple(
        Tool(t["name"], t.get("description", ""), t.get("input_schema") or {})
        for t in body.get("tools") or ()
    )
    choice = body.get("tool_choice") or {}
    modes = {"auto": "auto", "any": "required", "none": "none"}
    return ChatRequest(
        tuple(messages),
        tools=tools,
        tool_choice=choice.get("name") or modes.get(choice.get("type", "")),
        stop=tuple(body["stop_sequences"]) if body.get("stop_sequences") else None,
        max_tokens=body.get("max_tokens"),
    )


class _SmartResponder:
    """Answers each request from its body with SmartFakeModel; some models are down."""

    def __init__(self) -> None:
        self.model = SmartFakeModel("wire")
        self.outages: dict[str, Step] = {_DOWN: server_error(503)}

    def __call__(self, recorded: RecordedRequest) -> Step:
        model = recorded.model or ""
        if model in self.outages:
            return self.outages[model]
        assert recorded.body is not None
        if recorded.protocol == "anthropic":
            request = _anthropic_request(recorded.body)
        else:
            request = _openai_request(recorded.body)
        response = self.model.complete(request)
        usage = response.usage
        prompt = request.messages[-1].text
        details = {
            name: count for marker, (name, count) in _USAGE_MARKERS.items() if marker in prompt
        }
        if usage is None:
            counts = None
        else:
            # OpenAI's prompt_tokens include the cached ones (Anthropic's input_tokens do not);
            # its completion_tokens include the reasoning ones.
            cached = details.get("cache_read_tokens", 0) if recorded.protocol != "anthropic" else 0
            reasoning = details.get("reasoning_tokens", 0)
            counts = (usage.input_tokens + cached, usage.output_tokens + reasoning)
        return Reply(
            response.text,
            tool_calls=[ToolCallSpec(c.name, c.arguments, c.id) for c in response.tool_calls],
            usage=counts,
            finish_reason=response.finish_reason,
            **details,
        )


def _server() -> FakeLLMServer:
    global _SERVER
    if _SERVER is None:
        _SERVER = FakeLLMServer().start()
        _SERVER.set_responder(_SmartResponder())
    return _SERVER


@pytest.fixture(scope="module", autouse=True)
def _stop_server() -> Iterator[None]:
    yield
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


_OPEN: list[OpenAIProvider | AnthropicProvider] = []


@pytest.fixture(autouse=True)
async def _close_providers() -> AsyncIterator[None]:
    """Close every provider a test created, inside the test's event loop."""
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def _gpt(name: str = "gpt-test") -> OpenAIProvider:
    provider = OpenAIProvider(name, api_key="sk-test", base_url=_server().openai_base_url)
    _OPEN.append(provider)
    return provider


def _claude() -> AnthropicProvider:
    provider = AnthropicProvider(
        "claude-test", api_key="sk-ant-test", base_url=_server().anthropic_base_url
    )
    _OPEN.append(provider)
    return provider


class _WireSuite(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ReliableChatModel]:
        return ReliableChatModel

    def _marked(self, marker: str, stream: bool) -> AIMessage:
        """The answer to a prompt carrying ``marker``, invoked or streamed and merged."""
        model = self.chat_model_class(**self.chat_model_params)
        prompt = f"Say hello {marker}"
        if not stream:
            return model.invoke(prompt)
        merged: AIMessageChunk | None = None
        for chunk in model.stream(prompt):
            merged = chunk if merged is None else merged + chunk
        assert merged is not None
        return merged

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        return self._marked("[cache-read]", stream)

    def invoke_with_cache_creation_input(self, *, stream: bool = False) -> AIMessage:
        return self._marked("[cache-write]", stream)

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        return self._marked("[reasoning]", stream)

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True


class TestOpenAIProviderOverTheWire(_WireSuite):
    """The suite through OpenAIProvider -> openai SDK -> fake server."""

    @property
    def supported_usage_metadata_details(self) -> dict[Any, Any]:
        # OpenAI reports cached prompt tokens and reasoning tokens; it has no cache writes.
        details = ["cache_read_input", "reasoning_output"]
        return {"invoke": details, "stream": details}

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {"gpt": _gpt(), "claude": _claude(), "audio": _gpt(_AUDIO)},
            "enable_caching": False,
        }

    @property
    def model_override_value(self) -> str:
        return "claude"


class TestAnthropicProviderOverTheWire(_WireSuite):
    """The suite through AnthropicProvider -> anthropic SDK -> fake server."""

    @property
    def supported_usage_metadata_details(self) -> dict[Any, Any]:
        # Anthropic reports cache reads and writes; it does not count reasoning tokens apart.
        details = ["cache_read_input", "cache_creation_input"]
        return {"invoke": details, "stream": details}

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {"claude": _claude(), "gpt": _gpt(), "audio": _gpt(_AUDIO)},
            "enable_caching": False,
        }

    @property
    def model_override_value(self) -> str:
        return "gpt"


class TestFallbackOverTheWire(_WireSuite):
    """The suite while the OpenAI model answers 503: every answer is Anthropic's, over HTTP."""

    @property
    def supported_usage_metadata_details(self) -> dict[Any, Any]:
        details = ["cache_read_input", "cache_creation_input"]
        return {"invoke": details, "stream": details}

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {"down": _gpt(_DOWN), "claude": _claude(), "audio": _gpt(_AUDIO)},
            "enable_caching": False,
            "max_retries": 1,
            "clock": FakeClock(),
        }

    @property
    def model_override_value(self) -> str:
        return "claude"
