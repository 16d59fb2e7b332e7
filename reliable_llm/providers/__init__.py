"""Providers over the official SDKs: OpenAI, Azure OpenAI, Anthropic and OpenAI-compatible APIs.

Importing this package imports neither ``openai`` nor ``anthropic``: each SDK is loaded on
a provider's first call, and a missing one raises `ProviderConfigurationError` naming the
extra to install (``pip install 'reliable-llm[openai]'``).

Every provider turns its SDK's retries off (the manager retries), keeps its API key in a
`SecretStr`, and translates SDK errors into the `reliable_llm.ProviderError` tree.
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
