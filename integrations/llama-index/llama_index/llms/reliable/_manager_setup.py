"""Which manager a `ReliableLLM` uses, and what the LLM keeps about it between calls.

The rules for building or sharing a manager are the same in both adapters and live in
`reliable_llm.adapters`; this module adds the LlamaIndex side: LlamaIndex LLMs given to
``models=`` are wrapped in `LlamaIndexLLMProvider`, and `Core` holds the manager with what
each call needs to know about the route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.llms.llm import LLM
from llama_index.llms.reliable._provider import LlamaIndexLLMProvider

from reliable_llm import LLMManager
from reliable_llm.adapters import (
    OWN_MANAGER_OPTIONS,
    AdapterCore,
    attach_manager,
    check_option_names,
    manager_arguments,
)

__all__ = [
    "OWN_MANAGER_OPTIONS",
    "Core",
    "attach_manager",
    "build_core",
    "check_option_names",
    "manager_arguments",
]


class Core(AdapterCore):
    """The `AdapterCore` of a `ReliableLLM`, with its cache of metadata per model."""

    __slots__ = ("described",)

    def __init__(
        self,
        manager: LLMManager,
        *,
        per_call_route: bool,
        model: str | None = None,
        fallbacks: list[str] | None = None,
    ) -> None:
        super().__init__(manager, per_call_route=per_call_route, model=model, fallbacks=fallbacks)
        # Metadata and instrumentation payload per (model, max_tokens), with the registration
        # they were computed from, checked by identity on use.
        self.described: dict[
            tuple[str, int | None], tuple[Mapping[str, Any], LLMMetadata, dict[str, Any]]
        ] = {}


def _as_model(value: Any) -> Any:
    """A LlamaIndex LLM given to ``models=`` serves through `LlamaIndexLLMProvider`."""
    return LlamaIndexLLMProvider(value) if isinstance(value, LLM) else value


def build_core(
    manager: LLMManager | None,
    models: Mapping[str, Any] | None,
    *,
    model: str | None,
    fallbacks: list[str] | None,
    options: Mapping[str, Any],
) -> Core:
    """Use ``manager`` as is, or build one from ``models`` and the own-manager ``options``.

    Raises:
        ConfigurationError: Neither or both of ``manager`` and ``models``, own-manager options
            with an existing manager, or an invalid model or option.
        UnknownModelError: ``model`` or a fallback is not registered.
    """
    return Core.build(
        manager, models, model=model, fallbacks=fallbacks, options=options, wrap=_as_model
    )
