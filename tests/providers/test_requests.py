"""What reaches the wire: passthrough parameters, defaults, headers and Entra ID tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from reliable_llm import AsyncChatStream, ChatRequest, Message
from reliable_llm.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    OpenAIProvider,
    preset,
)
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, ToolCallSpec
from tests.providers.conftest import KINDS, ManagerFactory, Target


@pytest.mark.parametrize("kind", KINDS)
async def test_unknown_params_pass_through_as_body_fields(
    kind: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """chat(..., top_k=5, extra_headers=...) sends top_k in the body and the header upstream."""
    made = target(kind)
    manager = make_manager(made.provider, fallback=False)

    await manager.achat("hi", top_k=5, extra_headers={"X-Trace": "t-1"}, timeout=20)

    sent = server.requests[0]
    assert sent.body is not None
    assert sent.body["top_k"] == 5
    assert "extra_headers" not in sent.body and "timeout" not in sent.body
    assert sent.headers["x-trace"] == "t-1"


async def test_default_params_and_headers_apply_unless_overridden(server: FakeLLMServer) -> None:
    """Provider-level default_params and default_headers go with every request."""
    provider = AnthropicProvider(
        "claude-test",
        api_key="k",
        base_url=server.anthropic_base_url,
        default_params={"temperature": 0.0, "top_k": 3},
        default_headers={"X-Team": "search"},
    )
    await provider.acomplete(ChatRequest((Message.user("a"),), temperature=0.7))
    await provider.aclose()

    sent = server.requests[0]
    assert sent.body is not None
    assert (sent.body["temperature"], sent.body["top_k"]) == (0.7, 3)
    assert sent.headers["x-team"] == "search"


def test_azure_entra_id_token_provider_needs_no_key(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With azure_ad_token_provider the token is the bearer and no API key is required."""
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    provider = AzureOpenAIProvider(
        "deploy-test",
        endpoint=server.azure_endpoint,
        api_version="2024-10-21",
        azure_ad_token_provider=lambda: "entra-token",
    )
    assert provider.complete(ChatRequest((Message.user("a"),))).text == "ok"
    provider.close()

    sent = server.requests[0]
    assert sent.headers["authorization"] == "Bearer entra-token"
    assert sent.query["api-version"] == "2024-10-21"
    assert provider.describe()["auth"] == "entra_id"


def test_openai_organization_header(server: FakeLLMServer) -> None:
    """The organization id is sent as OpenAI-Organization and shown by describe()."""
    provider = OpenAIProvider(
        "gpt-test", api_key="k", base_url=server.openai_base_url, organization="org-1"
    )
    provider.complete(ChatRequest((Message.user("a"),)))
    provider.close()

    assert server.requests[0].headers["openai-organization"] == "org-1"
    assert provider.describe()["organization"] == "org-1"


@pytest.mark.parametrize("kind", KINDS)
async def test_streams_never_yield_empty_chunks(
    kind: str, server: FakeLLMServer, target: Callable[..., Target]
) -> None:
    """Role-only and empty deltas are skipped; only the last chunk carries the finish."""
    made = target(kind)
    reply = Reply("Hello there", tool_calls=[ToolCallSpec("f", {"a": 1})], chunk_size=3)
    server.script(made.scripted_as, reply, reply)
    request = ChatRequest((Message.user("a"),))

    for chunks in (
        list(made.provider.stream(request)),
        [c async for c in made.provider.astream(request)],
    ):
        *body, last = chunks
        assert body and all(c.text or c.tool_call_deltas for c in body)
        assert all(c.finish_reason is None and c.usage is None for c in body)
        assert last.finish_reason == "tool_calls" and last.usage is not None
        assert "".join(c.text for c in chunks) == "Hello there"


def test_azure_api_version_from_the_environment(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_API_VERSION and AZURE_OPENAI_ENDPOINT configure a deployment built bare."""
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01-preview")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.azure_endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key")
    provider = AzureOpenAIProvider("deploy-test")
    provider.complete(ChatRequest((Message.user("a"),)))
    provider.close()

    sent = server.requests[0]
    assert sent.path == "/openai/deployments/deploy-test/chat/completions"
    assert sent.query["api-version"] == "2025-01-01-preview"
    assert sent.headers["api-key"] == "azure-key"


def test_preset_without_stream_usage_omits_stream_options(server: FakeLLMServer) -> None:
    """Presets whose service rejects stream_options (mistral) do not send it."""
    provider = preset("mistral", "mistral-small", api_key="k", base_url=server.openai_base_url)
    assert isinstance(provider, OpenAIProvider)
    chunks = list(provider.stream(ChatRequest((Message.user("a"),))))
    provider.close()

    body = server.requests[0].body
    assert body is not None and body["stream"] is True and "stream_options" not in body
    assert chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_abandoned_stream_releases_its_connection(
    kind: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """Stopping after the first chunk closes the upstream response; the breaker stays clean."""
    made = target(kind)
    server.script(made.scripted_as, Reply("a long answer " * 20, chunk_size=4, chunk_interval=0.01))
    manager = make_manager(made.provider, fallback=False)

    stream = manager.astream("hi")
    assert isinstance(stream, AsyncChatStream)
    first = await anext(stream)
    await stream.aclose()

    assert first.text == "a lo"
    for _ in range(100):  # the server notices the closed socket on its own thread
        if server.active_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert server.active_connections == 0
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 0
