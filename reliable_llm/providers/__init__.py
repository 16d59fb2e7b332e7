"""Providers over the official SDKs: OpenAI, Azure OpenAI, Anthropic and OpenAI-compatible APIs.

Importing this package imports neither ``openai`` nor ``anthropic``: each SDK is loaded on
a provider's first call, and a missing one raises `ProviderConfigurationError` naming the
extra to install (``pip install 'reliable-llm[openai]'``).

Every provider turns its SDK's retries off (the manager retries), keeps its API key in a
`SecretStr`, and translates SDK errors into the `reliable_llm.ProviderError` tree.

Example::

    from reliable_llm import LLMManager
    from reliable_llm.providers import AnthropicProvider, OpenAIProvider, preset

    manager = LLMManager()
    manager.register_model("gpt", OpenAIProvider("gpt-4o-mini"))          # OPENAI_API_KEY
    manager.register_model("claude", AnthropicProvider("claude-sonnet-4-5"))  # ANTHROPIC_API_KEY
    manager.register_model("llama", preset("groq", "llama-3.3-70b-versatile"))  # GROQ_API_KEY
    manager.register_model("local", preset("ollama", "llama3.2"))         # no key
    manager.set_fallback_chain(["claude", "llama", "local"])

Anthropic has no JSON mode: ``response_format`` is emulated with a forced tool whose input
schema is the requested one, and the answer text is that JSON (see `AnthropicProvider`).
"""

from __future__ import annotations

from reliable_llm.providers._anthropic import AnthropicProvider
from reliable_llm.providers._azure import DEFAULT_AZURE_API_VERSION, AzureOpenAIProvider
from reliable_llm.providers._compatible import OpenAICompatibleProvider
from reliable_llm.providers._openai import OpenAIProvider
from reliable_llm.providers._presets import PRESETS, ProviderPreset, preset
from reliable_llm.providers._sdk import ProviderConfigurationError
from reliable_llm.providers._secret import SecretStr
from reliable_llm.providers._translate import parse_retry_after

__all__ = [
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
