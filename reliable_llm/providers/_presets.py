"""Named presets: OpenAI, Azure, Anthropic and OpenAI-compatible services, ready to use."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from reliable_llm._errors import ConfigurationError
from reliable_llm._provider import Provider
from reliable_llm.providers._anthropic import AnthropicProvider
from reliable_llm.providers._azure import AzureOpenAIProvider
from reliable_llm.providers._capability_defaults import PRESET_CAPABILITIES
from reliable_llm.providers._compatible import OpenAICompatibleProvider
from reliable_llm.providers._openai import OpenAIProvider

__all__ = ["PRESETS", "ProviderPreset", "preset"]

Protocol = Literal["openai", "azure", "anthropic", "openai_compatible"]


@dataclass(frozen=True, slots=True)
class ProviderPreset:
    """Where a service lives and how it authenticates.

    Attributes:
        name: The preset's name (also the provider name in responses and metrics).
        protocol: Which provider class serves it.
        base_url: The documented API root (None: the SDK's default or an env var).
        api_key_env: The environment variable that holds the key (None: keyless).
        stream_usage: Whether the service accepts ``stream_options.include_usage``.
        docs: Where the base URL is documented.
    """

    name: str
    protocol: Protocol
    base_url: str | None
    api_key_env: str | None
    stream_usage: bool = True
    docs: str = ""

    @property
    def requires_key(self) -> bool:
        """Whether calls fail without a key (local servers need none)."""
        return self.api_key_env is not None


def _compatible(
    name: str, base_url: str, api_key_env: str | None, docs: str, *, stream_usage: bool = True
) -> ProviderPreset:
    return ProviderPreset(name, "openai_compatible", base_url, api_key_env, stream_usage, docs)


_ALL = (
    ProviderPreset(
        "openai",
        "openai",
        None,
        "OPENAI_API_KEY",
        docs="https://platform.openai.com/docs/api-reference/chat",
    ),
    ProviderPreset(
        "azure",
        "azure",
        None,
        "AZURE_OPENAI_API_KEY",
        docs="https://learn.microsoft.com/azure/ai-services/openai/reference",
    ),
    ProviderPreset(
        "anthropic",
        "anthropic",
        None,
        "ANTHROPIC_API_KEY",
        docs="https://docs.anthropic.com/en/api/messages",
    ),
    _compatible(
        "cerebras",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
        "https://inference-docs.cerebras.ai/resources/openai",
    ),
    _compatible(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        "DEEPINFRA_API_KEY",
        "https://deepinfra.com/docs/advanced/openai_api",
    ),
    _compatible(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        "https://api-docs.deepseek.com/",
    ),
    _compatible(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "https://docs.fireworks.ai/tools-sdks/openai-compatibility",
    ),
    _compatible(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        "GEMINI_API_KEY",
        "https://ai.google.dev/gemini-api/docs/openai",
    ),
    _compatible(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "https://console.groq.com/docs/openai",
    ),
    _compatible(
        "hyperbolic",
        "https://api.hyperbolic.xyz/v1",
        "HYPERBOLIC_API_KEY",
        "https://docs.hyperbolic.ai/inference/text-apis",
    ),
    _compatible(
        "llamacpp",
        "http://localhost:8080/v1",
        None,
        "https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
    ),
    _compatible(
        "lmstudio",
        "http://localhost:1234/v1",
        None,
        "https://lmstudio.ai/docs/app/api/endpoints/openai",
    ),
    _compatible(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "https://docs.mistral.ai/api/",
        stream_usage=False,
    ),
    _compatible(
        "moonshot",
        "https://api.moonshot.ai/v1",
        "MOONSHOT_API_KEY",
        "https://platform.moonshot.ai/docs/api/chat",
    ),
    _compatible(
        "nvidia",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_API_KEY",
        "https://docs.api.nvidia.com/nim/reference/llm-apis",
    ),
    _compatible(
        "ollama",
        "http://localhost:11434/v1",
        None,
        "https://github.com/ollama/ollama/blob/main/docs/openai.md",
    ),
    _compatible(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "https://openrouter.ai/docs/quickstart",
    ),
    _compatible(
        "perplexity",
        "https://api.perplexity.ai",
        "PERPLEXITY_API_KEY",
        "https://docs.perplexity.ai/guides/chat-completions-guide",
    ),
    _compatible(
        "sambanova",
        "https://api.sambanova.ai/v1",
        "SAMBANOVA_API_KEY",
        "https://docs.sambanova.ai/cloud/docs/capabilities/openai-compatibility",
    ),
    _compatible(
        "together",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "https://docs.together.ai/docs/openai-api-compatibility",
    ),
    _compatible(
        "vllm",
        "http://localhost:8000/v1",
        None,
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    _compatible(
        "xai", "https://api.x.ai/v1", "XAI_API_KEY", "https://docs.x.ai/docs/api-reference"
    ),
)

#: Every preset by name (read-only).
PRESETS: MappingProxyType[str, ProviderPreset] = MappingProxyType({p.name: p for p in _ALL})


def preset(name: str, model: str, **kwargs: Any) -> Provider:
    """A provider for ``model`` on the named service, configured from its preset.

    Keyword arguments go to the provider class (``api_key``, ``base_url``, timeouts, ...);
    for ``"azure"`` the model is the deployment name. The provider's ``capabilities`` (which
    content parts it takes) are the service's defaults (`_capability_defaults`).

    Example:
        >>> groq = preset("groq", "llama-3.3-70b-versatile")
        >>> groq.describe()["base_url"]
        'https://api.groq.com/openai/v1'

    Raises:
        ConfigurationError: ``name`` is no preset, or an argument is invalid.
    """
    spec = PRESETS.get(name)
    if spec is None:
        raise ConfigurationError(
            f"unknown provider preset {name!r}; known presets: {', '.join(sorted(PRESETS))}. "
            "For another OpenAI-compatible endpoint use OpenAICompatibleProvider(base_url=...)"
        )
    if spec.protocol == "openai":
        return OpenAIProvider(model, **kwargs)
    if spec.protocol == "azure":
        return AzureOpenAIProvider(model, **kwargs)
    if spec.protocol == "anthropic":
        return AnthropicProvider(model, **kwargs)
    options: dict[str, Any] = {
        "base_url": spec.base_url,
        "api_key_env": spec.api_key_env,
        "provider_name": spec.name,
        "stream_usage": spec.stream_usage,
    }
    options.update(kwargs)
    provider = OpenAICompatibleProvider(model, **options)
    capabilities = PRESET_CAPABILITIES.get(spec.name)
    if capabilities is not None:
        provider.capabilities = capabilities
    return provider
