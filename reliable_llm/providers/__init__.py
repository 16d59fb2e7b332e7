"""Providers over the official SDKs: OpenAI, Azure OpenAI, Anthropic and OpenAI-compatible APIs.

Importing this package imports neither ``openai`` nor ``anthropic``: each SDK is loaded on
a provider's first call, and a missing one raises `ProviderConfigurationError` naming the
extra to install (``pip install 'reliable-llm[openai]'``).
"""

from __future__ import annotations

from reliable_llm.providers._openai import OpenAIProvider
from reliable_llm.providers._sdk import ProviderConfigurationError
from reliable_llm.providers._secret import SecretStr

__all__ = ["OpenAIProvider", "ProviderConfigurationError", "SecretStr"]
