"""The manager behind a `ReliableLLM`, built from an existing one or from plain parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.llms.llm import LLM
from llama_index.llms.reliable._provider import LlamaIndexLLMProvider

from reliable_llm import ConfigurationError, LLMManager, UnknownModelError

__all__ = ["Core", "build_core"]


class Core:
    """The manager and caches behind a `ReliableLLM` (kept outside pydantic's fields).

    ``per_call_route`` says whether each call names its model and fallbacks (an LLM around a
    shared manager with its own route) or uses the manager's precomputed route.
    """

    __slots__ = ("manager", "metadata", "payloads", "per_call_route")

    def __init__(self, manager: LLMManager, *, per_call_route: bool) -> None:
        self.manager = manager
        self.per_call_route = per_call_route
        self.metadata: dict[tuple[str, int | None], LLMMetadata] = {}
        self.payloads: dict[tuple[str, int | None], dict[str, Any]] = {}


def build_core(
    manager: LLMManager | None,
    models: Mapping[str, Any] | None,
    model_metadata: Mapping[str, Mapping[str, Any]] | None,
    model: str | None,
    fallbacks: list[str] | None,
    options: Mapping[str, Any],
) -> Core:
    """Use ``manager`` as is, or build one from ``models`` and the manager ``options``.

    Raises:
        ConfigurationError: Neither or both of ``manager`` and ``models``, manager options or
            metadata with an existing manager, or an invalid model or option.
        UnknownModelError: ``model`` or a fallback is not registered.
    """
    if (manager is None) == (models is None):
        raise ConfigurationError(
            "pass either manager=LLMManager(...) or models={name: model, ...}, not both"
        )
    if manager is None:
        assert models is not None
        built = _build_manager(models, model_metadata or {}, model, fallbacks, options)
        return Core(built, per_call_route=False)
    if options or model_metadata:
        names = sorted([*options, *(["model_metadata"] if model_metadata else [])])
        raise ConfigurationError(
            f"{names} configure a new manager; set them on the manager you pass instead"
        )
    registered = manager.list_models()
    for name in [*([model] if model else []), *(fallbacks or [])]:
        if name not in registered:
            raise UnknownModelError(name, registered)
    return Core(manager, per_call_route=model is not None or fallbacks is not None)


def _build_manager(
    models: Mapping[str, Any],
    metadata: Mapping[str, Mapping[str, Any]],
    model: str | None,
    fallbacks: list[str] | None,
    options: Mapping[str, Any],
) -> LLMManager:
    if not models:
        raise ConfigurationError("models must name at least one model")
    unknown = sorted(set(metadata) - set(models))
    if unknown:
        raise ConfigurationError(f"model_metadata names models that are not in models: {unknown}")
    manager = LLMManager(**options)
    for name, value in models.items():
        provider = LlamaIndexLLMProvider(value) if isinstance(value, LLM) else value
        manager.register_model(name, provider, metadata.get(name))
    if model is not None:
        manager.set_active_model(model)
    if fallbacks is not None:
        manager.set_fallback_chain(fallbacks)
    return manager
