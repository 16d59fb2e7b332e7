"""Model strings: ``"<preset>:<model>"`` (``"openai:gpt-4o-mini"``) as a provider.

The same shape as LangChain's ``init_chat_model("openai:gpt-4o-mini")`` and LiteLLM's
``"groq/llama-3.3-70b-versatile"``: the preset names the service (see `PRESETS`), the rest is
the service's model id, passed through unchanged (``"ollama:llama3.2:1b"`` keeps its tag).
"""

from __future__ import annotations

from reliable_llm._errors import ConfigurationError
from reliable_llm._provider import Provider
from reliable_llm.providers._presets import PRESETS, preset

__all__ = ["provider_from_string"]


def provider_from_string(model: str) -> Provider:
    """The provider a ``"<preset>:<model>"`` string names, configured from its preset.

    The API key is read from the preset's environment variable when the provider first
    calls its service, so building one needs no key.

    Example:
        >>> provider_from_string("groq:llama-3.3-70b-versatile").describe()["model"]
        'llama-3.3-70b-versatile'

    Raises:
        ConfigurationError: The string has no ``":"``, an empty part, or an unknown preset;
            the message lists the known presets.
    """
    prefix, sep, model_id = model.partition(":")
    prefix = prefix.strip().lower()
    known = ", ".join(sorted(PRESETS))
    if not sep or not prefix or not model_id.strip():
        raise ConfigurationError(
            f"model string {model!r} must look like '<preset>:<model>', e.g. "
            f"'openai:gpt-4o-mini'; known presets: {known}"
        )
    if prefix not in PRESETS:
        raise ConfigurationError(
            f"model string {model!r} names the unknown preset {prefix!r}; known presets: {known}. "
            "For another OpenAI-compatible endpoint register "
            "OpenAICompatibleProvider(model, base_url=...)"
        )
    return preset(prefix, model_id.strip())
