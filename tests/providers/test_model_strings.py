"""``"<preset>:<model>"`` strings wherever a model object is accepted."""

from __future__ import annotations

import pytest

from reliable_llm import ConfigurationError, LLMManager
from reliable_llm.providers import PRESETS
from reliable_llm.providers._base import SDKProvider
from reliable_llm.providers._model_string import provider_from_string
from reliable_llm.testing.fake_server import FakeLLMServer


def test_openai_and_anthropic_strings_call_their_services(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model string builds the preset's provider, which calls the service with that model id."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    gpt = provider_from_string("openai:gpt-4o-mini")
    claude = provider_from_string("anthropic:claude-test")
    manager = LLMManager(max_retries=0, enable_caching=False)
    manager.register_model("gpt", gpt)
    manager.register_model("claude", claude)
    try:
        assert manager.chat("hi").provider == "openai"
        assert manager.chat("hi", model="claude").provider == "anthropic"
    finally:
        for provider in (gpt, claude):
            assert isinstance(provider, SDKProvider)
            provider.close()
    seen = [(r.protocol, r.model) for r in server.requests]
    assert seen == [("openai", "gpt-4o-mini"), ("anthropic", "claude-test")]


@pytest.mark.parametrize(
    ("text", "provider", "model"),
    [
        ("groq:llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
        ("ollama:llama3.2:1b", "ollama", "llama3.2:1b"),
        ("OpenRouter:meta-llama/llama-3.1-8b", "openrouter", "meta-llama/llama-3.1-8b"),
    ],
)
def test_preset_strings_keep_the_model_id_whole(text: str, provider: str, model: str) -> None:
    """Only the first colon splits: tags and slashes stay in the service's model id."""
    manager = LLMManager()
    manager.register_model("m", text)
    described = manager.describe_model("m")["provider"]
    assert (described["provider"], described["model"]) == (provider, model)
    assert described["base_url"] == PRESETS[provider].base_url


@pytest.mark.parametrize("text", ["gpt-4o-mini", "openai:", ":gpt-4o", "  "])
def test_malformed_strings_show_the_expected_shape(text: str) -> None:
    """A string without a preset or model says what shape is expected and lists presets."""
    with pytest.raises(ConfigurationError, match=r"'<preset>:<model>'.*known presets: anthropic"):
        LLMManager().register_model("m", text)


def test_unknown_preset_lists_the_known_ones() -> None:
    """An unknown prefix is named, with every known preset and the custom-endpoint escape."""
    with pytest.raises(ConfigurationError, match="unknown preset 'opneai'") as raised:
        LLMManager().register_model("m", "opneai:gpt-4o")
    assert all(name in str(raised.value) for name in PRESETS)
    assert "OpenAICompatibleProvider" in str(raised.value)
