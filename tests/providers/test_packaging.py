"""Lazy SDK loading, missing-SDK errors, the public surface and the preset registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

import reliable_llm.providers as providers
from reliable_llm import ChatRequest, ConfigurationError, Message
from reliable_llm.providers import (
    PRESETS,
    AnthropicProvider,
    AzureOpenAIProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    ProviderConfigurationError,
    preset,
)
from reliable_llm.testing.fake_server import FakeLLMServer

REQUEST = ChatRequest((Message.user("hi"),))


def test_public_surface_is_pinned() -> None:
    """The package exports exactly the documented names."""
    assert providers.__all__ == [
        "DEFAULT_AZURE_API_VERSION",
        "PRESETS",
        "AnthropicProvider",
        "AzureOpenAIProvider",
        "OpenAICompatibleProvider",
        "OpenAIProvider",
        "ProviderConfigurationError",
        "ProviderPreset",
        "SecretStr",
        "parse_retry_after",
        "preset",
    ]


def test_import_and_construction_do_not_import_the_sdks() -> None:
    """Importing the package and building every preset imports neither openai nor anthropic."""
    code = (
        "import sys\n"
        "from reliable_llm.providers import PRESETS, preset\n"
        "for name in PRESETS:\n"
        "    extra = {'endpoint': 'https://x'} if name == 'azure' else {}\n"
        "    preset(name, 'm', api_key='k', **extra)\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'httpx2') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "provider"),
    [
        ("openai", OpenAIProvider("gpt-test", api_key="k")),
        ("openai", AzureOpenAIProvider("deploy", endpoint="https://x", api_key="k")),
        ("openai", preset("groq", "llama", api_key="k")),
        ("anthropic", AnthropicProvider("claude-test", api_key="k")),
    ],
)
def test_missing_sdk_names_the_extra(
    module: str, provider: OpenAIProvider | AnthropicProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the SDK installed the first call says which extra to install."""
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail

    with pytest.raises(ConfigurationError, match=rf"pip install 'reliable-llm\[{module}\]'") as e:
        provider.complete(REQUEST)

    assert isinstance(e.value, ProviderConfigurationError)


def test_there_are_at_least_eighteen_providers() -> None:
    """OpenAI, Azure, Anthropic and at least fifteen OpenAI-compatible presets are known."""
    compatible = [p for p in PRESETS.values() if p.protocol == "openai_compatible"]
    assert {"openai", "azure", "anthropic"} <= set(PRESETS)
    assert len(compatible) >= 15
    assert len(PRESETS) >= 18


@pytest.mark.parametrize(
    "name", sorted(p for p in PRESETS if PRESETS[p].protocol == "openai_compatible")
)
def test_compatible_preset_is_configured(name: str) -> None:
    """Each compatible preset has its base URL, key variable and provider name."""
    spec = PRESETS[name]
    provider = preset(name, "some-model")

    assert isinstance(provider, OpenAICompatibleProvider)
    info = provider.describe()
    assert info["base_url"] == spec.base_url
    assert info["api_key_env"] == spec.api_key_env
    assert info["provider"] == name
    assert spec.base_url is not None and spec.base_url.startswith(("https://", "http://localhost"))
    assert spec.requires_key == spec.base_url.startswith("https://")


def test_preset_returns_the_native_classes() -> None:
    """The openai, azure and anthropic presets build the dedicated providers."""
    assert type(preset("openai", "gpt-4o-mini")) is OpenAIProvider
    assert type(preset("azure", "my-deployment", endpoint="https://x")) is AzureOpenAIProvider
    assert type(preset("anthropic", "claude-sonnet-4-5")) is AnthropicProvider


def test_unknown_preset_lists_the_known_ones() -> None:
    """An unknown preset name raises ConfigurationError listing every preset."""
    with pytest.raises(ConfigurationError, match="groq") as caught:
        preset("no-such-service", "m")
    assert "OpenAICompatibleProvider" in str(caught.value)


def test_custom_base_url_works_for_any_compatible_server() -> None:
    """OpenAICompatibleProvider talks to any endpoint, keyless unless told otherwise."""
    with FakeLLMServer() as server:
        provider = OpenAICompatibleProvider(
            "local-model", base_url=server.openai_base_url, provider_name="my-server"
        )
        response = provider.complete(REQUEST)
        provider.close()
        body = server.requests[0].body

    assert response.text == "ok" and response.provider == "my-server"
    assert body is not None and body["model"] == "local-model"


@pytest.mark.parametrize(
    "kwargs",
    [{"connect_timeout": 0}, {"read_timeout": -1}, {"connect_timeout": True}],
)
def test_invalid_timeouts_are_rejected_at_construction(kwargs: dict[str, object]) -> None:
    """Timeouts must be positive numbers of seconds."""
    with pytest.raises(ConfigurationError, match="timeout"):
        OpenAIProvider("gpt-test", **kwargs)  # type: ignore[arg-type]


def test_invalid_anthropic_max_tokens_is_rejected() -> None:
    """Anthropic's default max_tokens must be a positive int."""
    with pytest.raises(ConfigurationError, match="max_tokens"):
        AnthropicProvider("claude-test", max_tokens=0)


def test_given_client_gets_sdk_retries_turned_off() -> None:
    """A client passed in is copied with max_retries=0, so only the manager retries."""
    import openai

    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9", max_retries=5)
    provider = OpenAIProvider("gpt-test", client=client)

    assert provider.sync_client().max_retries == 0
    assert client.max_retries == 5
    client.close()
    provider.close()
