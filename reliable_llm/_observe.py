"""What both exporters need to describe a call: closed error types and provider facts.

Exporters label by these, so every value comes from a bounded set: registered model names,
our own error classes, provider names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from reliable_llm import _errors
from reliable_llm._errors import ReliableLLMError

if TYPE_CHECKING:
    from reliable_llm._registry import Registry

__all__ = ["ModelFacts", "error_type", "model_facts", "outcome"]

# Our provider names as the OpenTelemetry GenAI conventions spell them (gen_ai.provider.name);
# any other name is reported as it is, which the conventions allow.
_GENAI_PROVIDERS = {"azure_openai": "azure.ai.openai"}


def error_type(error: BaseException | None) -> str:
    """The name of the package's own error class ``error`` is (or derives from).

    A user's subclass of `ProviderError` reports its nearest built-in ancestor, so the
    value is always one of a closed vocabulary; anything else is ``"other"``.
    """
    if error is None:
        return "none"
    for cls in type(error).__mro__:
        if cls.__module__ == _errors.__name__ and issubclass(cls, ReliableLLMError):
            return cls.__name__
    return "other"


def outcome(answered_by: str | None, cancelled: bool) -> str:
    """A finished request's outcome: ``"success"``, ``"failure"`` or ``"cancelled"``."""
    if answered_by is not None:
        return "success"
    return "cancelled" if cancelled else "failure"


class ModelFacts(NamedTuple):
    """A registered model as the conventions name it."""

    provider: str  # gen_ai.provider.name
    request_model: str  # the provider's model id (the registered name when it has none)


def model_facts(registry: Registry, name: str) -> ModelFacts:
    """The provider name and provider model id of registered model ``name``."""
    entry = registry.models.get(name) or registry.deployments.get(name)
    if entry is None:  # unregistered since: say what we know
        return ModelFacts("custom", name)
    provider = entry.provider
    model_id = getattr(provider, "model", None)
    provider_name = provider.provider_name
    return ModelFacts(
        _GENAI_PROVIDERS.get(provider_name, provider_name),
        model_id if isinstance(model_id, str) and model_id else name,
    )
